package ociimage

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"strongroom.dev/images/internal/stabletar"
)

// Ref is the name an archive gives its image when loaded.
type Ref struct {
	// Tag is the image's tag: index.json's org.opencontainers.image.ref.name,
	// what `skopeo copy oci-archive:FILE:TAG` selects.
	Tag string
	// Short is repository:tag as Docker writes it (manifest.json's
	// RepoTags); Full the same with the registry spelled out, as containerd
	// names images (io.containerd.image.name).
	Short, Full string
}

var validTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// NewRef checks repository and tag as a registry would.
func NewRef(repository, tag string) (Ref, error) {
	if !validTag.MatchString(tag) {
		return Ref{}, fmt.Errorf("version %q cannot be an image tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')", tag)
	}
	repo, err := name.NewRepository(repository)
	if err != nil {
		return Ref{}, fmt.Errorf("repository %q: %w", repository, err)
	}
	full := repo.Name() + ":" + tag
	if repo.RegistryStr() == name.DefaultRegistry {
		// containerd and Docker spell Docker Hub "docker.io".
		full = "docker.io/" + repo.RepositoryStr() + ":" + tag
	}
	return Ref{Tag: tag, Short: repository + ":" + tag, Full: full}, nil
}

// WriteArchive writes b as an OCI image layout, in a tar archive, to w.
// go-containerregistry writes the layout into a temporary directory under
// tmp; the archive then lists it sorted, with fixed times, owners and modes
// (what is on disk depends on the umask and the clock). The archive also
// holds Docker's manifest.json, so that `docker load` reads it with either
// of its image stores.
func WriteArchive(w io.Writer, b *Built, ref Ref, created time.Time, tmp string) error {
	dir, err := os.MkdirTemp(tmp, "oci-layout-")
	if err != nil {
		return fmt.Errorf("temporary directory for the OCI layout: %w", err)
	}
	defer os.RemoveAll(dir)

	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := lp.AppendIndex(b.Index, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.Tag,
		"io.containerd.image.name":          ref.Full,
	})); err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	dockerManifest, err := dockerManifest(b.Image, ref)
	if err != nil {
		return err
	}

	entries := []stabletar.Entry{stabletar.File("manifest.json", 0o644, 0, 0, dockerManifest)}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			entries = append(entries, stabletar.Dir(rel+"/", 0o755, 0, 0))
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", rel)
		}
		entries = append(entries, stabletar.Entry{
			Name: rel, Mode: 0o644, Size: fi.Size(),
			Open: func() (io.ReadCloser, error) { return os.Open(p) },
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading back the OCI layout: %w", err)
	}
	if err := stabletar.Write(w, entries, created); err != nil {
		return fmt.Errorf("archiving the OCI layout: %w", err)
	}
	return nil
}

// dockerManifest is the manifest.json of `docker save`, pointing into the
// layout's blobs. Docker's classic image store reads only this file; the
// containerd store and every OCI tool read index.json.
func dockerManifest(img v1.Image, ref Ref) ([]byte, error) {
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	d := tarball.Descriptor{Config: blobPath(cfg), RepoTags: []string{ref.Short}}
	for _, l := range m.Layers {
		d.Layers = append(d.Layers, blobPath(l.Digest))
	}
	raw, err := json.Marshal(tarball.Manifest{d})
	if err != nil {
		return nil, fmt.Errorf("docker manifest.json: %w", err)
	}
	return raw, nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
