package main

import (
	"runtime"
	"runtime/debug"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// versionString names the version, the toolchain and, when the build
// recorded it, the VCS revision.
func versionString() string {
	s := "authd " + version + " " + runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				s += " " + kv.Value
			}
		}
	}
	return s
}
