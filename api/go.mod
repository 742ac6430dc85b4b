module strongroom.dev/api

go 1.26.0

require github.com/go-jose/go-jose/v4 v4.1.9

require k8s.io/apimachinery v0.37.2 // indirect
