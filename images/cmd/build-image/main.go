// Command build-image packages a static Linux Go binary and its SBOM as a
// container image: an OCI image layout in a tar archive, reproducible (the
// same inputs give the same bytes), without a container daemon.
//
//	build-image -name authd -binary bin/images/amd64/authd \
//	    -sbom bin/images/amd64/authd.cdx.json -version v1.2.3 -revision "$sha" \
//	    -out bin/images/authd.oci.tar -sbom-out bin/images/authd.cdx.json \
//	    -digest-file bin/images/authd.digest
//
// Every timestamp (image config, history, files, the SBOM's) is
// SOURCE_DATE_EPOCH from the environment, or Unix time 0 when it is unset
// (the Makefile sets it to the last commit's time). It prints the image
// manifest's digest, the one to pin in a deployment.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"strongroom.dev/images/internal/gobinary"
	"strongroom.dev/images/internal/ociimage"
	"strongroom.dev/images/internal/sbom"
)

func main() {
	err := run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

// options are the parsed command line and environment.
type options struct {
	name, binary, sbom                  string
	version, revision, source, licenses string
	description, repository             string
	out, sbomOut, digestFile            string
	created                             time.Time
}

func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	o, err := parse(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	return build(o, stdout)
}

func parse(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("build-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.name, "name", "", "program `name`: the image runs /NAME (required)")
	fs.StringVar(&o.binary, "binary", "", "the static Linux Go binary (required)")
	fs.StringVar(&o.sbom, "sbom", "", "its CycloneDX JSON SBOM, e.g. from cyclonedx-gomod bin -json (required)")
	fs.StringVar(&o.version, "version", "", "image version and tag (required)")
	fs.StringVar(&o.revision, "revision", "", "source revision (org.opencontainers.image.revision)")
	fs.StringVar(&o.source, "source", "", "source repository URL (org.opencontainers.image.source)")
	fs.StringVar(&o.licenses, "licenses", "", "SPDX license expression (org.opencontainers.image.licenses)")
	fs.StringVar(&o.description, "description", "", "one-line description (org.opencontainers.image.description)")
	fs.StringVar(&o.repository, "repository", "", "repository the archive names the image in (default strongroom/NAME)")
	fs.StringVar(&o.out, "out", "", "the OCI archive to write, NAME.oci.tar (required)")
	fs.StringVar(&o.sbomOut, "sbom-out", "", "also write the normalised SBOM here")
	fs.StringVar(&o.digestFile, "digest-file", "", "also write the image manifest's digest here")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: build-image -name NAME -binary FILE -sbom FILE -version VERSION -out FILE.oci.tar [flags]")
		fmt.Fprintln(stderr, "Timestamps come from SOURCE_DATE_EPOCH (seconds since 1970; Unix 0 if unset).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (every input is a flag)", fs.Arg(0))
	}
	if err := ociimage.CheckName(o.name); err != nil {
		return nil, fmt.Errorf("-name: %w", err)
	}
	for _, req := range []struct{ flag, value string }{
		{"-binary", o.binary}, {"-sbom", o.sbom}, {"-version", o.version}, {"-out", o.out},
	} {
		if req.value == "" {
			return nil, fmt.Errorf("%s is required", req.flag)
		}
	}
	if fi, err := os.Stat(o.out); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("-out %s is a directory", o.out)
	}
	if o.repository == "" {
		o.repository = "strongroom/" + o.name
	}
	created, err := sourceDateEpoch(lookupEnv)
	if err != nil {
		return nil, err
	}
	o.created = created
	return &o, nil
}

// maxEpoch is 9999-12-31T23:59:59Z, the last second RFC 3339 (and so the
// OCI config's "created") can write.
const maxEpoch = 253402300799

// sourceDateEpoch reads SOURCE_DATE_EPOCH as reproducible-builds.org
// defines it: an integer count of seconds since 1970-01-01 UTC. A malformed
// value is an error, never silently replaced.
func sourceDateEpoch(lookupEnv func(string) (string, bool)) (time.Time, error) {
	v, ok := lookupEnv("SOURCE_DATE_EPOCH")
	if !ok {
		return time.Unix(0, 0).UTC(), nil
	}
	bad := func(why string) error {
		return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %s (want whole seconds since 1970-01-01 UTC, e.g. `git log -1 --format=%%ct`)", v, why)
	}
	if v == "" {
		return time.Time{}, bad("set but empty")
	}
	if strings.TrimLeft(v, "0123456789") != "" {
		return time.Time{}, bad("not a non-negative integer")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxEpoch {
		return time.Time{}, bad("after the year 9999")
	}
	return time.Unix(n, 0).UTC(), nil
}

func build(o *options, stdout io.Writer) error {
	ref, err := ociimage.NewRef(o.repository, o.version)
	if err != nil {
		return err
	}
	bin, err := gobinary.Load(o.binary)
	if err != nil {
		return err
	}
	rawSBOM, err := os.ReadFile(o.sbom)
	if err != nil {
		return fmt.Errorf("reading the SBOM: %w", err)
	}
	binSum := sha256.Sum256(bin.Data)
	doc, err := sbom.Normalize(rawSBOM, sbom.Options{Created: o.created, BinarySHA256: hex.EncodeToString(binSum[:])})
	if err != nil {
		return fmt.Errorf("%s: %w", o.sbom, err)
	}

	annotations := map[string]string{
		"org.opencontainers.image.title":   o.name,
		"org.opencontainers.image.version": o.version,
		"org.opencontainers.image.created": o.created.Format(time.RFC3339),
	}
	for key, v := range map[string]string{
		"revision": o.revision, "source": o.source, "licenses": o.licenses, "description": o.description,
	} {
		if v != "" {
			annotations["org.opencontainers.image."+key] = v
		}
	}

	b, err := ociimage.Build(ociimage.Spec{
		Name:        o.name,
		Binary:      bin.Data,
		GOARCH:      bin.GOARCH,
		Variant:     bin.Variant,
		SBOM:        doc,
		Created:     o.created,
		Annotations: annotations,
	})
	if err != nil {
		return err
	}
	imgDigest, err := b.Image.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	idxDigest, err := b.Index.Digest()
	if err != nil {
		return fmt.Errorf("index digest: %w", err)
	}

	// The layout's temporary directory goes beside the archive: the same
	// file system, and no assumption about the size of /tmp.
	if err := writeFile(o.out, func(w io.Writer) error {
		return ociimage.WriteArchive(w, b, ref, o.created, filepath.Dir(o.out))
	}); err != nil {
		return err
	}
	if o.sbomOut != "" {
		if err := writeFile(o.sbomOut, bytesWriter(doc)); err != nil {
			return err
		}
	}
	if o.digestFile != "" {
		if err := writeFile(o.digestFile, bytesWriter([]byte(imgDigest.String()+"\n"))); err != nil {
			return err
		}
	}
	p := b.Platform
	platform := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		platform += "/" + p.Variant
	}
	fmt.Fprintf(stdout, "%s %s %s (%s, index %s, created %s)\n",
		o.out, ref.Short, imgDigest, platform, idxDigest, o.created.Format(time.RFC3339))
	return nil
}

func bytesWriter(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// writeFile replaces path with what write writes, atomically (a temporary
// file in the same directory, then a rename), so a failed or interrupted
// build never leaves a truncated file behind under the final name.
func writeFile(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
