// Package gobinary loads the program a container image will run and checks
// that it can run on an empty base: a Linux ELF executable built by Go,
// statically linked. The image's platform is read from the binary itself, so
// an image can never claim an architecture its program was not built for.
package gobinary

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Binary is a loaded, checked program.
type Binary struct {
	Data []byte
	// GOARCH and Variant are the OCI platform's architecture and variant
	// ("v7" for GOARM=7; empty where Go has no variant).
	GOARCH, Variant string
	// GoVersion is the toolchain that built it ("go1.27.3"); MainPath its
	// main package's import path.
	GoVersion, MainPath string
}

// machines maps each supported GOARCH to the ELF machine it must carry.
var machines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"386":     elf.EM_386,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// Load reads the file at path and checks it. Errors name the path and say
// what is wrong in terms of how to build the binary correctly.
func Load(path string) (*Binary, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("binary %s does not exist", path)
	case err != nil:
		return nil, fmt.Errorf("binary %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("binary %s is a directory, not a program", path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("binary %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading binary: %w", err)
	}
	b, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("binary %s: %w", path, err)
	}
	return b, nil
}

func parse(data []byte) (*Binary, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not an ELF executable (a Linux program): %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("ELF file of type %s, not an executable", f.Type)
	}
	// An interpreter (the dynamic loader) or needed shared libraries mean
	// the program cannot start on an empty base image.
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, errors.New("dynamically linked (it names an ELF interpreter); build it with CGO_ENABLED=0")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return nil, fmt.Errorf("dynamically linked against %s; build it with CGO_ENABLED=0", strings.Join(libs, ", "))
	}

	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("no Go build information (is it a Go program?): %w", err)
	}
	settings := make(map[string]string, len(bi.Settings))
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	goos, goarch := settings["GOOS"], settings["GOARCH"]
	if goos != "linux" {
		return nil, fmt.Errorf("built for GOOS=%q; a container image needs GOOS=linux", goos)
	}
	want, ok := machines[goarch]
	if !ok {
		return nil, fmt.Errorf("built for GOARCH=%q, which this tool does not package", goarch)
	}
	if f.Machine != want {
		return nil, fmt.Errorf("build information says GOARCH=%s but the ELF machine is %s", goarch, f.Machine)
	}
	if settings["CGO_ENABLED"] == "1" {
		// Statically linked cgo programs exist, but they embed a C library
		// built for one libc and fail in subtle ways elsewhere: refuse them.
		return nil, errors.New("built with CGO_ENABLED=1; build it with CGO_ENABLED=0")
	}
	variant := ""
	if goarch == "arm" {
		// GOARM is "7" or, with a floating-point mode, "7,softfloat".
		level, _, _ := strings.Cut(settings["GOARM"], ",")
		if level == "" {
			level = "7" // Go's default GOARM for Linux.
		}
		variant = "v" + level
	}
	return &Binary{
		Data:      data,
		GOARCH:    goarch,
		Variant:   variant,
		GoVersion: bi.GoVersion,
		MainPath:  bi.Path,
	}, nil
}
