// Package ociimage assembles a single-binary container image, attaches its
// SBOM as an OCI 1.1 artifact, and writes both as an OCI image layout in a
// tar archive. Every object is made with go-containerregistry; this package
// only decides what goes in and keeps every input to a digest fixed.
//
// The archive's index.json has exactly one entry, an image index holding:
//
//   - the image manifest, with its platform (linux/amd64…);
//   - the SBOM artifact (artifactType application/vnd.cyclonedx+json, an
//     empty config, the SBOM as its one blob, subject = the image
//     manifest), with the platform unknown/unknown.
//
// One entry, because skopeo and podman refuse an archive of several
// unnamed entries; the unknown/unknown platform (the convention BuildKit
// uses for its attestations) keeps runtimes from ever picking the artifact
// to run. Pushing the index (crane push, skopeo copy --all) uploads the
// artifact with its subject, so registries list it as a referrer of the
// image; copying the image alone (skopeo copy without --all) drops it. The
// SBOM is also a file inside the image, so it is never lost.
package ociimage

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec is everything an image is made of. Equal specs give equal bytes.
type Spec struct {
	// Name is the program's name: the image runs /<Name>.
	Name string
	// Binary is the static Linux program; GOARCH and Variant its platform.
	Binary          []byte
	GOARCH, Variant string
	// SBOM is the (normalised) CycloneDX JSON document of Binary.
	SBOM []byte
	// Created stamps the config, the history and every file.
	Created time.Time
	// Annotations are the org.opencontainers.image.* values; they become the
	// config's labels and the manifests' annotations.
	Annotations map[string]string
}

// Built is an assembled image with its SBOM artifact.
type Built struct {
	Image    v1.Image
	Artifact v1.Image
	Index    v1.ImageIndex
	Platform v1.Platform
}

// User is the image's user: nonroot, by number (a runtime checking
// runAsNonRoot cannot resolve names).
var User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckName refuses a program name that is not a plain file name fit for
// an image repository, or that collides with the image's own directories.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("no name given")
	case !validName.MatchString(name):
		return fmt.Errorf("name %q: use lower-case letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", name)
	case reserved[name]:
		return fmt.Errorf("name %q is a directory of the image itself", name)
	}
	return nil
}

// Build assembles the image, its SBOM artifact and the index holding both.
func Build(s Spec) (*Built, error) {
	if err := CheckName(s.Name); err != nil {
		return nil, err
	}
	created := v1.Time{Time: s.Created.UTC()}
	platform := v1.Platform{OS: "linux", Architecture: s.GOARCH, Variant: s.Variant}

	l, err := layer(s.Name, s.Binary, s.SBOM, s.Created)
	if err != nil {
		return nil, err
	}
	cfg := &v1.ConfigFile{
		Architecture: platform.Architecture,
		Variant:      platform.Variant,
		OS:           platform.OS,
		Created:      created,
		Config: v1.Config{
			User:       User,
			Entrypoint: []string{"/" + s.Name},
			WorkingDir: "/",
			Labels:     maps.Clone(s.Annotations),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	// empty.Image is a Docker schema 2 image; make it OCI before adding to it.
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     l,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "build-image (strongroom.dev/images)",
			Comment:   "/" + s.Name + ", its SBOM /" + SBOMPath(s.Name) + ", users root and nonroot (65532), /tmp",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	img, ok := mutate.Annotations(img, s.Annotations).(v1.Image)
	if !ok {
		return nil, errors.New("annotating the image manifest did not give an image")
	}

	subject, err := descriptor(img)
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	art, err := sbomArtifact(s.SBOM, s.Name, subject, s.Annotations)
	if err != nil {
		return nil, err
	}

	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}},
		mutate.IndexAddendum{Add: art, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
		}},
	)
	idx, ok = mutate.Annotations(idx, s.Annotations).(v1.ImageIndex)
	if !ok {
		return nil, errors.New("annotating the image index did not give an index")
	}
	// Computing the index's digest computes every digest under it: fail
	// here, not halfway through writing.
	if _, err := idx.Digest(); err != nil {
		return nil, fmt.Errorf("image index: %w", err)
	}
	return &Built{Image: img, Artifact: art, Index: idx, Platform: platform}, nil
}

// descriptor is the minimal descriptor of an image manifest (media type,
// digest, size), as a subject should be.
func descriptor(img v1.Image) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	n, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}, nil
}
