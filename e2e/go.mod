module strongroom.dev/e2e

go 1.26

replace strongroom.dev/api => ../api
