module strongroom.dev/hack/openapi2jsonschema

go 1.26
