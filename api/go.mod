module strongroom.dev/api

go 1.26
