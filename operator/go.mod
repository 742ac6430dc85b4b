module strongroom.dev/operator

go 1.26
