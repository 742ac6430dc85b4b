package ociimage

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strongroom.dev/images/internal/stabletar"
)

// NonRoot is the user and group the image runs as: distroless's "nonroot",
// which the Helm chart's securityContext (runAsUser/runAsGroup) also names.
const NonRoot = 65532

// The user database of the image: enough for the runtime and for Go's
// os/user to name the ids, nothing to log in with.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nonroot:x:65532:\n"
	// Go's resolver reads /etc/nsswitch.conf; "files dns" makes it consult
	// /etc/hosts (which the kubelet writes) before DNS, as glibc would.
	nsswitch = "hosts: files dns\n"
)

// reserved are the top-level names the filesystem uses itself.
var reserved = map[string]bool{"etc": true, "home": true, "sbom": true, "tmp": true}

// SBOMPath is where the image carries the SBOM of the binary called name.
func SBOMPath(name string) string { return "sbom/" + name + ".cdx.json" }

// rootfs lists the image's whole filesystem. Everything belongs to root and
// is read-only to the program, except nonroot's home (as in distroless) and
// /tmp (sticky, world-writable: the chart mounts an emptyDir over it, and
// without the chart a program still finds a usable /tmp).
func rootfs(name string, binary, sbom []byte) []stabletar.Entry {
	return []stabletar.Entry{
		stabletar.File(name, 0o555, 0, 0, binary),
		stabletar.Dir("etc/", 0o755, 0, 0),
		stabletar.File("etc/group", 0o644, 0, 0, []byte(group)),
		stabletar.File("etc/nsswitch.conf", 0o644, 0, 0, []byte(nsswitch)),
		stabletar.File("etc/passwd", 0o644, 0, 0, []byte(passwd)),
		stabletar.Dir("home/", 0o755, 0, 0),
		stabletar.Dir("home/nonroot/", 0o700, NonRoot, NonRoot),
		stabletar.Dir("sbom/", 0o755, 0, 0),
		stabletar.File(SBOMPath(name), 0o644, 0, 0, sbom),
		stabletar.Dir("tmp/", 0o1777, 0, 0),
	}
}

// layer returns the filesystem as one gzip-compressed OCI layer.
//
// The compression is done here rather than by go-containerregistry so that
// its parameters are fixed in this file: gzip's default level (level 9
// takes several times as long on a Go binary to save about one per cent),
// and the header Go writes when nothing is set (no file name, no comment,
// MTIME 0, OS "unknown"). compress/flate's output depends only on the
// input, the level and the Go release, and the toolchain is pinned.
func layer(name string, binary, sbom []byte, created time.Time) (v1.Layer, error) {
	var tarred bytes.Buffer
	if err := stabletar.Write(&tarred, rootfs(name, binary, sbom), created); err != nil {
		return nil, fmt.Errorf("image filesystem: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if _, err := zw.Write(tarred.Bytes()); err != nil {
		return nil, fmt.Errorf("compressing the image filesystem: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the image filesystem: %w", err)
	}
	compressed := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	return l, nil
}
