package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"strongroom.dev/images/internal/testprog"
)

const epoch = 1700000000 // 2023-11-14T22:13:20Z

var created = time.Unix(epoch, 0).UTC()

// shared holds the test program, built once for the whole package.
var shared struct {
	dir  string
	once sync.Once
	bin  string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "build-image-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// program returns the test program's bytes.
func program(t *testing.T) []byte {
	t.Helper()
	shared.once.Do(func() { shared.bin = testprog.Build(t, shared.dir, testprog.Options{}) })
	if shared.bin == "" {
		t.Fatal("the test program did not build")
	}
	b, err := os.ReadFile(shared.bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sbomFor is shaped like cyclonedx-gomod's output for bin, including what it
// gets wrong for reproducibility: a wall-clock timestamp, a random serial,
// the tool's own hashes.
func sbomFor(bin []byte, timestamp, serial, toolHash string) []byte {
	sum := sha256.Sum256(bin)
	return []byte(`{"$schema":"http://cyclonedx.org/schema/bom-1.6.schema.json","bomFormat":"CycloneDX",
"specVersion":"1.6","serialNumber":"urn:uuid:` + serial + `","version":1,
"metadata":{"timestamp":"` + timestamp + `",
 "tools":[{"vendor":"CycloneDX","name":"cyclonedx-gomod","version":"v1.10.0","hashes":[{"alg":"SHA-256","content":"` + toolHash + `"}]}],
 "component":{"bom-ref":"pkg:golang/example.com/hello@v1.0.0?type=module","type":"application","name":"example.com/hello","version":"v1.0.0"},
 "properties":[{"name":"cdx:gomod:binary:hash:SHA-256","value":"` + hex.EncodeToString(sum[:]) + `"},{"name":"cdx:gomod:binary:name","value":"hello"}]},
"components":[{"bom-ref":"pkg:golang/std@go1.27.3?type=module","type":"library","name":"std","version":"go1.27.3"}]}`)
}

// inputs is a directory holding a binary and its SBOM, as a build leaves them.
type inputs struct{ binary, sbom string }

func writeInputs(t *testing.T, bin, sbom []byte, binMode, sbomMode os.FileMode, mtime time.Time) inputs {
	t.Helper()
	dir := t.TempDir()
	in := inputs{binary: filepath.Join(dir, "hello"), sbom: filepath.Join(dir, "hello.cdx.json")}
	for path, w := range map[string]struct {
		b    []byte
		mode os.FileMode
	}{in.binary: {bin, binMode}, in.sbom: {sbom, sbomMode}} {
		if err := os.WriteFile(path, w.b, w.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, w.mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func defaultInputs(t *testing.T) inputs {
	bin := program(t)
	return writeInputs(t, bin, sbomFor(bin, "2026-11-27T22:49:01+01:00", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa"), 0o755, 0o644, time.Now())
}

// outputs are the files one build writes.
type outputs struct{ archive, sbom, digest, stdout string }

func (o outputs) read(t *testing.T) (archive, sbom []byte, digest string) {
	t.Helper()
	var err error
	if archive, err = os.ReadFile(o.archive); err != nil {
		t.Fatal(err)
	}
	if sbom, err = os.ReadFile(o.sbom); err != nil {
		t.Fatal(err)
	}
	d, err := os.ReadFile(o.digest)
	if err != nil {
		t.Fatal(err)
	}
	return archive, sbom, strings.TrimSpace(string(d))
}

// buildImage runs the command on in, writing into a new directory under outDir
// (empty: a temporary one). extra flags override the defaults.
func buildImage(t *testing.T, in inputs, outDir string, env map[string]string, extra ...string) outputs {
	t.Helper()
	if outDir == "" {
		outDir = t.TempDir()
	}
	o := outputs{
		archive: filepath.Join(outDir, "hello.oci.tar"),
		sbom:    filepath.Join(outDir, "hello.cdx.json"),
		digest:  filepath.Join(outDir, "hello.digest"),
	}
	args := append([]string{
		"-name", "hello", "-binary", in.binary, "-sbom", in.sbom,
		"-version", "v1.0.0", "-revision", "0123456789abcdef0123456789abcdef01234567",
		"-source", "https://example.com/strongroom", "-licenses", "Apache-2.0",
		"-out", o.archive, "-sbom-out", o.sbom, "-digest-file", o.digest,
	}, extra...)
	if env == nil {
		env = map[string]string{"SOURCE_DATE_EPOCH": fmt.Sprint(epoch)}
	}
	var stdout, stderr bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := run(args, lookup, &stdout, &stderr); err != nil {
		t.Fatalf("build-image %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	o.stdout = stdout.String()
	return o
}

func TestProgramBuildIsReproducible(t *testing.T) {
	t.Parallel()
	// Two source directories, two output directories; the second build
	// starts from an empty build cache, so the compiler really runs twice.
	// (-short shares the cache: a fresh one costs ~20 s on a busy machine.)
	a, err := os.ReadFile(testprog.Build(t, t.TempDir(), testprog.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	o := testprog.Options{}
	if !testing.Short() {
		o.GOCACHE = t.TempDir()
	}
	b, err := os.ReadFile(testprog.Build(t, filepath.Join(t.TempDir(), "elsewhere"), o))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same program built twice gave different binaries")
	}
}

// Not parallel: it changes the process's umask.
func TestImageIsReproducible(t *testing.T) {
	bin := program(t)
	first := buildImage(t, writeInputs(t, bin,
		sbomFor(bin, "2026-11-27T22:49:01+01:00", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa"),
		0o755, 0o644, time.Now()), "", nil)

	// Copies with other modes (as another umask leaves them) and other
	// mtimes; an SBOM generated at another time with another serial by
	// another build of the tool; another output directory; another umask
	// for what the command writes itself.
	restore := setUmask(0o077)
	second := buildImage(t, writeInputs(t, bin,
		sbomFor(bin, "2031-02-03T04:05:06Z", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "bbbb"),
		0o700, 0o600, time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)), filepath.Join(t.TempDir(), "a", "b"), nil)
	restore()

	a1, s1, d1 := first.read(t)
	a2, s2, d2 := second.read(t)
	if d1 != d2 {
		t.Errorf("digests differ: %s, %s", d1, d2)
	}
	if !bytes.Equal(s1, s2) {
		t.Errorf("normalised SBOMs differ:\n%s\n%s", s1, s2)
	}
	if !bytes.Equal(a1, a2) {
		t.Errorf("archives differ (%d and %d bytes)", len(a1), len(a2))
	}
	if !strings.Contains(first.stdout, d1) {
		t.Errorf("stdout %q does not print the digest %s", first.stdout, d1)
	}
}

func TestImageFollowsInputs(t *testing.T) {
	t.Parallel()
	bin := program(t)
	in := defaultInputs(t)
	_, _, base := buildImage(t, in, "", nil).read(t)

	// One byte of the program: a letter of the message it prints.
	i := bytes.Index(bin, []byte("hello from a test image"))
	if i < 0 {
		t.Fatal("message not found in the program")
	}
	patched := slices.Clone(bin)
	patched[i] = 'j'
	onebyte := writeInputs(t, patched, sbomFor(patched, "2026-11-27T22:49:01Z", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa"), 0o755, 0o644, time.Now())

	variants := map[string]outputs{
		"one byte of the binary": buildImage(t, onebyte, "", nil),
		"version":                buildImage(t, in, "", nil, "-version", "v1.0.1"),
		"revision":               buildImage(t, in, "", nil, "-revision", "fedcba9876543210fedcba9876543210fedcba98"),
		"SOURCE_DATE_EPOCH":      buildImage(t, in, "", map[string]string{"SOURCE_DATE_EPOCH": fmt.Sprint(epoch + 1)}),
	}
	seen := map[string]string{base: "base"}
	for _, name := range slices.Sorted(maps.Keys(variants)) {
		_, _, d := variants[name].read(t)
		if other, ok := seen[d]; ok {
			t.Errorf("another %s gives the digest of %s: %s", name, other, d)
		}
		seen[d] = name
	}
}

// archiveEntry is one file of an archive or layer with its header.
type archiveEntry struct {
	hdr  *tar.Header
	data []byte
}

// readTar reads every entry, checking what every entry must satisfy: names
// sorted, mtime the epoch, no owner names, no access or change times.
func readTar(t *testing.T, r io.Reader) (map[string]archiveEntry, []string) {
	t.Helper()
	tr := tar.NewReader(r)
	entries := map[string]archiveEntry{}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(created) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: mtime %v (atime %v, ctime %v), want %v only", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, created)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q:%q", h.Name, h.Uname, h.Gname)
		}
		entries[h.Name] = archiveEntry{hdr: h, data: data}
		names = append(names, h.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
	return entries, names
}

func TestImageContents(t *testing.T) {
	t.Parallel()
	bin := program(t)
	out := buildImage(t, defaultInputs(t), "", nil)
	archive, sbomOut, digest := out.read(t)

	// The archive: an OCI layout plus Docker's manifest.json, all root's.
	outer, outerNames := readTar(t, bytes.NewReader(archive))
	dir := t.TempDir()
	for _, name := range outerNames {
		e := outer[name]
		wantMode := int64(0o644)
		if e.hdr.Typeflag == tar.TypeDir {
			wantMode = 0o755
		}
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Mode != wantMode {
			t.Errorf("archive %s: %d:%d %#o, want 0:0 %#o", name, e.hdr.Uid, e.hdr.Gid, e.hdr.Mode, wantMode)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if e.hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, e.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"oci-layout", "index.json", "manifest.json"} {
		if _, ok := outer[name]; !ok {
			t.Errorf("archive has no %s", name)
		}
	}

	// index.json: one entry, the image index, named for loaders.
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 || topManifest.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json lists %+v, want one image index", topManifest.Manifests)
	}
	if a := topManifest.Manifests[0].Annotations; a["org.opencontainers.image.ref.name"] != "v1.0.0" ||
		a["io.containerd.image.name"] != "docker.io/strongroom/hello:v1.0.0" {
		t.Errorf("index.json annotations = %v", a)
	}
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	idxManifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(idxManifest.Manifests) != 2 {
		t.Fatalf("image index lists %d manifests, want the image and its SBOM", len(idxManifest.Manifests))
	}
	imgDesc, sbomDesc := idxManifest.Manifests[0], idxManifest.Manifests[1]
	if p := imgDesc.Platform; p == nil || p.OS != "linux" || p.Architecture != "amd64" {
		t.Errorf("image platform = %+v, want linux/amd64", p)
	}
	if imgDesc.Digest.String() != digest {
		t.Errorf("digest file says %s, the index %s", digest, imgDesc.Digest)
	}

	// The image manifest and config.
	img, err := idx.Image(imgDesc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("the image is not valid: %v", err)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("image media type %s", mt)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "hello",
		"org.opencontainers.image.version":  "v1.0.0",
		"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.source":   "https://example.com/strongroom",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  "2023-11-14T22:13:20Z",
	}
	c := cfg.Config
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || !cfg.Created.Time.Equal(created) ||
		c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/hello"}) || c.Cmd != nil ||
		c.WorkingDir != "/" || len(c.Env) != 0 || !maps.Equal(c.Labels, wantLabels) {
		t.Errorf("config = %s/%s created %v, %+v", cfg.OS, cfg.Architecture, cfg.Created, c)
	}
	for _, h := range cfg.History {
		if !h.Created.Time.Equal(created) {
			t.Errorf("history %+v not at the epoch", h)
		}
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(m.Annotations, wantLabels) {
		t.Errorf("manifest annotations = %v", m.Annotations)
	}

	// The filesystem.
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want one", len(layers), err)
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s", mt)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files, names := readTar(t, rc)
	wantNames := []string{"etc/", "etc/group", "etc/nsswitch.conf", "etc/passwd", "hello", "home/", "home/nonroot/", "sbom/", "sbom/hello.cdx.json", "tmp/"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("layer holds %v, want %v", names, wantNames)
	}
	for name, f := range files {
		wantUID := 0
		if name == "home/nonroot/" {
			wantUID = 65532
		}
		if f.hdr.Uid != wantUID || f.hdr.Gid != wantUID {
			t.Errorf("%s owned by %d:%d, want %d:%d", name, f.hdr.Uid, f.hdr.Gid, wantUID, wantUID)
		}
	}
	if h := files["hello"]; h.hdr == nil || h.hdr.Mode != 0o555 || h.hdr.Typeflag != tar.TypeReg || !bytes.Equal(h.data, bin) {
		t.Error("/hello is not the program, mode 0555")
	}
	if h := files["tmp/"]; h.hdr == nil || h.hdr.Mode != 0o1777 {
		t.Error("/tmp is not a sticky world-writable directory")
	}
	if !bytes.Contains(files["etc/passwd"].data, []byte("nonroot:x:65532:65532:")) ||
		!bytes.Contains(files["etc/group"].data, []byte("nonroot:x:65532:")) {
		t.Errorf("no nonroot user:\n%s%s", files["etc/passwd"].data, files["etc/group"].data)
	}
	inImage := files["sbom/hello.cdx.json"].data
	if !bytes.Equal(inImage, sbomOut) {
		t.Error("the SBOM in the image is not the one written beside it")
	}
	var doc struct {
		SerialNumber string
		Metadata     struct {
			Timestamp string
			Tools     []map[string]any
		}
	}
	if err := json.Unmarshal(inImage, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Metadata.Timestamp != "2023-11-14T22:13:20Z" || doc.SerialNumber == "urn:uuid:0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60" ||
		len(doc.Metadata.Tools) != 1 || doc.Metadata.Tools[0]["hashes"] != nil {
		t.Errorf("SBOM not normalised: timestamp %s, serial %s, tools %v", doc.Metadata.Timestamp, doc.SerialNumber, doc.Metadata.Tools)
	}

	// The SBOM artifact refers to the image and carries the same SBOM.
	if sbomDesc.ArtifactType != "application/vnd.cyclonedx+json" || sbomDesc.Platform == nil ||
		sbomDesc.Platform.OS != "unknown" || sbomDesc.Platform.Architecture != "unknown" {
		t.Errorf("SBOM descriptor = %+v", sbomDesc)
	}
	rawArtifact, err := lp.Bytes(sbomDesc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	art, err := v1.ParseManifest(bytes.NewReader(rawArtifact))
	if err != nil {
		t.Fatal(err)
	}
	if art.ArtifactType != "application/vnd.cyclonedx+json" || art.Subject == nil ||
		art.Subject.Digest != imgDesc.Digest || art.Subject.MediaType != types.OCIManifestSchema1 || art.Subject.Size != imgDesc.Size {
		t.Errorf("SBOM artifact = %+v, want subject %s", art, imgDesc.Digest)
	}
	if art.Config.MediaType != types.OCIEmptyJSON || art.Config.Size != 2 {
		t.Errorf("SBOM artifact config = %+v, want the empty descriptor", art.Config)
	}
	if cfgBlob, err := lp.Bytes(art.Config.Digest); err != nil || string(cfgBlob) != "{}" {
		t.Errorf("SBOM artifact config blob = %q, %v", cfgBlob, err)
	}
	if len(art.Layers) != 1 || art.Layers[0].MediaType != "application/vnd.cyclonedx+json" {
		t.Fatalf("SBOM artifact layers = %+v", art.Layers)
	}
	if blob, err := lp.Bytes(art.Layers[0].Digest); err != nil || !bytes.Equal(blob, sbomOut) {
		t.Errorf("SBOM artifact blob is not the SBOM (%v)", err)
	}

	// Docker's manifest.json points at the same config and layer.
	var docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(outer["manifest.json"].data, &docker); err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	if len(docker) != 1 || docker[0].Config != "blobs/sha256/"+cfgName.Hex ||
		!slices.Equal(docker[0].RepoTags, []string{"strongroom/hello:v1.0.0"}) ||
		!slices.Equal(docker[0].Layers, []string{"blobs/sha256/" + m.Layers[0].Digest.Hex}) {
		t.Errorf("manifest.json = %+v", docker)
	}
}

func TestSourceDateEpochUnsetIsUnixZero(t *testing.T) {
	t.Parallel()
	out := buildImage(t, defaultInputs(t), "", map[string]string{})
	if !strings.Contains(out.stdout, "created 1970-01-01T00:00:00Z") {
		t.Errorf("stdout = %q, want creation at Unix 0", out.stdout)
	}
}

func TestRefuses(t *testing.T) {
	t.Parallel()
	in := defaultInputs(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	script := write("script.sh", "#!/bin/sh\necho hello\n")
	notJSON := write("sbom.xml", "<bom/>")
	spdx := write("spdx.json", `{"spdxVersion":"SPDX-2.3"}`)
	otherBin := program(t)
	otherBin = append(slices.Clone(otherBin), 0)
	stale := write("stale.cdx.json", string(sbomFor(otherBin, "2026-01-01T00:00:00Z", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa")))
	out := filepath.Join(dir, "out.oci.tar")

	base := map[string]string{"-name": "hello", "-binary": in.binary, "-sbom": in.sbom, "-version": "v1", "-out": out}
	epochOK := map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}
	tests := []struct {
		name string
		set  map[string]string // flags replaced ("" removes one)
		args []string          // extra arguments
		env  map[string]string
		want string
	}{
		{"missing binary", map[string]string{"-binary": filepath.Join(dir, "nope")}, nil, epochOK, "does not exist"},
		{"binary is a directory", map[string]string{"-binary": dir}, nil, epochOK, "is a directory"},
		{"binary is a script", map[string]string{"-binary": script}, nil, epochOK, "not an ELF executable"},
		{"no -binary", map[string]string{"-binary": ""}, nil, epochOK, "-binary is required"},
		{"no -name", map[string]string{"-name": ""}, nil, epochOK, "-name: no name given"},
		{"name with a slash", map[string]string{"-name": "../hello"}, nil, epochOK, "use lower-case letters"},
		{"upper-case name", map[string]string{"-name": "Hello"}, nil, epochOK, "use lower-case letters"},
		{"name of an image directory", map[string]string{"-name": "etc"}, nil, epochOK, "directory of the image itself"},
		{"no -version", map[string]string{"-version": ""}, nil, epochOK, "-version is required"},
		{"version not a tag", map[string]string{"-version": "feature/x"}, nil, epochOK, "cannot be an image tag"},
		{"bad repository", nil, []string{"-repository", "Strongroom/Hello"}, epochOK, `repository "Strongroom/Hello"`},
		{"no -out", map[string]string{"-out": ""}, nil, epochOK, "-out is required"},
		{"out is a directory", map[string]string{"-out": dir}, nil, epochOK, "is a directory"},
		{"missing SBOM", map[string]string{"-sbom": filepath.Join(dir, "nope.json")}, nil, epochOK, "reading the SBOM"},
		{"SBOM not JSON", map[string]string{"-sbom": notJSON}, nil, epochOK, "not a JSON object"},
		{"SBOM not CycloneDX", map[string]string{"-sbom": spdx}, nil, epochOK, "not CycloneDX"},
		{"SBOM of another binary", map[string]string{"-sbom": stale}, nil, epochOK, "describes another binary"},
		{"positional argument", nil, []string{"extra"}, epochOK, `unexpected argument "extra"`},
		{"unknown flag", nil, []string{"-arch", "arm64"}, epochOK, "flag provided but not defined"},
		{"SOURCE_DATE_EPOCH not a number", nil, nil, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, "not a non-negative integer"},
		{"SOURCE_DATE_EPOCH negative", nil, nil, map[string]string{"SOURCE_DATE_EPOCH": "-1"}, "not a non-negative integer"},
		{"SOURCE_DATE_EPOCH with spaces", nil, nil, map[string]string{"SOURCE_DATE_EPOCH": " 1700000000"}, "not a non-negative integer"},
		{"SOURCE_DATE_EPOCH fractional", nil, nil, map[string]string{"SOURCE_DATE_EPOCH": "1700000000.5"}, "not a non-negative integer"},
		{"SOURCE_DATE_EPOCH empty", nil, nil, map[string]string{"SOURCE_DATE_EPOCH": ""}, "set but empty"},
		{"SOURCE_DATE_EPOCH past 9999", nil, nil, map[string]string{"SOURCE_DATE_EPOCH": "253402300800"}, "after the year 9999"},
		{"SOURCE_DATE_EPOCH overflowing", nil, nil, map[string]string{"SOURCE_DATE_EPOCH": "99999999999999999999"}, "after the year 9999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := maps.Clone(base)
			maps.Copy(flags, tt.set)
			var args []string
			for _, k := range slices.Sorted(maps.Keys(flags)) {
				if flags[k] != "" {
					args = append(args, k, flags[k])
				}
			}
			args = append(args, tt.args...)
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			err := run(args, lookup, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("build-image %s: %v, want an error containing %q", strings.Join(args, " "), err, tt.want)
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Fatalf("a failed build left %s behind", out)
			}
			tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
			layouts, _ := filepath.Glob(filepath.Join(dir, "oci-layout-*"))
			if leftovers := append(tmps, layouts...); len(leftovers) > 0 {
				t.Fatalf("a failed build left temporary files: %v", leftovers)
			}
		})
	}
}
