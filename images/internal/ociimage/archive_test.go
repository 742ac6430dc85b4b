package ociimage

import (
	"strings"
	"testing"
)

func TestNewRef(t *testing.T) {
	tests := []struct {
		repository, tag string
		want            Ref
	}{
		{"strongroom/authd", "v1.2.3", Ref{Tag: "v1.2.3", Short: "strongroom/authd:v1.2.3", Full: "docker.io/strongroom/authd:v1.2.3"}},
		{"authd", "4a72e36-dirty", Ref{Tag: "4a72e36-dirty", Short: "authd:4a72e36-dirty", Full: "docker.io/library/authd:4a72e36-dirty"}},
		{"registry.example.com:5000/bank/authd", "v1", Ref{Tag: "v1", Short: "registry.example.com:5000/bank/authd:v1", Full: "registry.example.com:5000/bank/authd:v1"}},
	}
	for _, tt := range tests {
		got, err := NewRef(tt.repository, tt.tag)
		if err != nil || got != tt.want {
			t.Errorf("NewRef(%q, %q) = %+v, %v; want %+v", tt.repository, tt.tag, got, err, tt.want)
		}
	}
	for _, bad := range []struct{ repository, tag, want string }{
		{"strongroom/authd", "", "cannot be an image tag"},
		{"strongroom/authd", "-v1", "cannot be an image tag"},
		{"strongroom/authd", "v1+build", "cannot be an image tag"},
		{"strongroom/authd", strings.Repeat("a", 129), "cannot be an image tag"},
		{"Strongroom/Authd", "v1", "repository"},
		{"", "v1", "repository"},
	} {
		if _, err := NewRef(bad.repository, bad.tag); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("NewRef(%q, %q): %v, want an error containing %q", bad.repository, bad.tag, err, bad.want)
		}
	}
}
