package ociimage

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strongroom.dev/images/internal/sbom"
)

// emptyJSON is the OCI 1.1 empty config: an artifact has no image config.
var emptyJSON = []byte("{}")

// artifact is an OCI 1.1 artifact manifest with its blobs. mutate cannot
// make one (its images always carry an image config and no artifactType),
// so the manifest is built here from go-containerregistry's own types and
// partial.CompressedToImage supplies the rest of v1.Image.
type artifact struct {
	manifest []byte
	blobs    map[v1.Hash]v1.Layer
}

var _ partial.CompressedImageCore = (*artifact)(nil)

// sbomArtifact returns the artifact carrying doc whose subject is the image
// manifest described by subject. Its annotations are the image's creation
// time and the SBOM blob's file name, so that tools that list referrers (or
// pull the blob to a file) show something meaningful.
func sbomArtifact(doc []byte, name string, subject v1.Descriptor, annotations map[string]string) (v1.Image, error) {
	config := static.NewLayer(emptyJSON, types.OCIEmptyJSON)
	blob := static.NewLayer(doc, sbom.MediaType)
	configDesc, err := partial.Descriptor(config)
	if err != nil {
		return nil, fmt.Errorf("SBOM artifact config: %w", err)
	}
	blobDesc, err := partial.Descriptor(blob)
	if err != nil {
		return nil, fmt.Errorf("SBOM artifact blob: %w", err)
	}
	blobDesc.Annotations = map[string]string{"org.opencontainers.image.title": name + ".cdx.json"}

	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  sbom.MediaType,
		Config:        *configDesc,
		Layers:        []v1.Descriptor{*blobDesc},
		Subject:       &subject,
	}
	if created, ok := annotations["org.opencontainers.image.created"]; ok {
		m.Annotations = map[string]string{"org.opencontainers.image.created": created}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("SBOM artifact manifest: %w", err)
	}
	a := &artifact{manifest: raw, blobs: map[v1.Hash]v1.Layer{
		configDesc.Digest: config,
		blobDesc.Digest:   blob,
	}}
	return partial.CompressedToImage(a)
}

func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) RawConfigFile() ([]byte, error)      { return emptyJSON, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.blobs[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("SBOM artifact has no blob %s", h)
}
