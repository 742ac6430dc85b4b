//go:build unix

package devmode

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

func checkOwner(dir string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s (uid %d)", errNotOwner, dir, st.Uid)
	}
	return nil
}
