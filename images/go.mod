module strongroom.dev/images

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/google/go-cmp v0.7.0 // indirect
	// go-containerregistry asks for v1.19.2, affected by GO-2026-6865
	// (govulncheck finds it reachable through the layer code); v1.20.2 fixes it.
	github.com/klauspost/compress v1.20.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
