package gobinary

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strongroom.dev/images/internal/testprog"
)

func TestLoadStaticGoProgram(t *testing.T) {
	b, err := Load(testprog.Build(t, t.TempDir(), testprog.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if b.GOARCH != "amd64" || b.Variant != "" || b.MainPath != "example.com/hello" || !strings.HasPrefix(b.GoVersion, "go1.") {
		t.Errorf("Load = %s %q %s %s", b.GOARCH, b.Variant, b.MainPath, b.GoVersion)
	}
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope"), "does not exist"},
		{"directory", dir, "is a directory"},
		{"not ELF", text, "not an ELF executable"},
	}
	// A C program of the build host, if there is one: dynamically linked.
	if f, err := elf.Open("/bin/true"); err == nil {
		f.Close()
		tests = append(tests, struct{ name, path, want string }{"dynamic", "/bin/true", "dynamically linked"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("Load(%s): %v, want an error naming the path and saying %q", tt.path, err, tt.want)
			}
		})
	}
}

func TestParseRefusesTamperedBinaries(t *testing.T) {
	bin, err := os.ReadFile(testprog.Build(t, t.TempDir(), testprog.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	// e_machine (offset 18, little-endian) rewritten to AArch64: the build
	// information still says amd64.
	arm := append([]byte{}, bin...)
	arm[18], arm[19] = byte(elf.EM_AARCH64), byte(elf.EM_AARCH64>>8)
	if _, err := parse(arm); err == nil || !strings.Contains(err.Error(), "ELF machine is EM_AARCH64") {
		t.Errorf("parse(machine changed): %v", err)
	}
	if _, err := parse(bin[:4096]); err == nil {
		t.Error("parse accepted a truncated binary")
	}
}
