// Package testprog compiles a tiny static Linux Go program for tests, the
// way the Makefile compiles authd for its image.
package testprog

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Options vary a build.
type Options struct {
	// Message is what the program prints: another message, another binary.
	Message string
	// GOCACHE, when set, replaces the Go build cache (an empty directory
	// makes the compiler start from nothing).
	GOCACHE string
	// GOARCH defaults to amd64.
	GOARCH string
}

// Build writes the program's source into a new directory, compiles it with
// the image build's flags, and returns the binary's path (out/hello).
func Build(t testing.TB, out string, o Options) string {
	t.Helper()
	if o.Message == "" {
		o.Message = "hello from a test image"
	}
	if o.GOARCH == "" {
		o.GOARCH = "amd64"
	}
	src := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/hello\n\ngo 1.26\n",
		// No imports: an empty build cache then costs the runtime alone.
		"main.go": "package main\n\nfunc main() { println(" + strconv.Quote(o.Message) + ") }\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(out, "hello")
	// go test puts its own toolchain's bin directory first on PATH.
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid=", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.GOARCH,
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off",
	)
	if o.GOCACHE != "" {
		cmd.Env = append(cmd.Env, "GOCACHE="+o.GOCACHE)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, stderr.String())
	}
	return bin
}
