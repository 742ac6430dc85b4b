//go:build !unix

package devmode

import "io/fs"

// checkOwner has no portable meaning outside Unix; the permission check in
// checkPrivateDir still applies.
func checkOwner(string, fs.FileInfo) error { return nil }
