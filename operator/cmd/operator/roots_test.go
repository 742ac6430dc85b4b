package main

import (
	"runtime/debug"
	"testing"
)

// TestFallbackRootsLinked: the operator's binary carries the fallback
// roots (a test binary links its main package's imports too).
func TestFallbackRootsLinked(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	for _, m := range bi.Deps {
		if m.Path == "golang.org/x/crypto/x509roots/fallback" {
			return
		}
	}
	t.Fatal("golang.org/x/crypto/x509roots/fallback is not linked")
}
