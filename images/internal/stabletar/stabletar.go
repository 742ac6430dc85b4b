// Package stabletar writes tar archives whose bytes depend only on the
// entries' names, contents, modes and owners: never on the order they were
// listed in, the files' mtimes, the umask, the user running the build or the
// host's user database.
//
// It is used twice for a container image: for the image's one filesystem
// layer and for the outer archive that carries the OCI image layout.
package stabletar

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// Entry is one file or directory of an archive.
type Entry struct {
	// Name is a clean, relative, slash-separated path. A directory's name
	// ends with "/".
	Name string
	// Mode holds the permission bits and, for directories such as /tmp, the
	// sticky bit (0o1777). Other file-type bits are refused.
	Mode int64
	// UID and GID own the entry. Names are never written: the image's own
	// /etc/passwd, not the build host's, gives the ids their meaning.
	UID, GID int
	// Size and Open give a regular file's content; Open is called once, while
	// the entry is written. Both are unset for a directory.
	Size int64
	Open func() (io.ReadCloser, error)
}

// IsDir reports whether e is a directory.
func (e Entry) IsDir() bool { return strings.HasSuffix(e.Name, "/") }

// File returns a regular-file entry holding b.
func File(name string, mode int64, uid, gid int, b []byte) Entry {
	return Entry{
		Name: name, Mode: mode, UID: uid, GID: gid,
		Size: int64(len(b)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
	}
}

// Dir returns a directory entry; name must end with "/".
func Dir(name string, mode int64, uid, gid int) Entry {
	return Entry{Name: name, Mode: mode, UID: uid, GID: gid}
}

// permBits are the bits an entry's Mode may carry: permissions plus
// setuid, setgid and sticky, as tar stores them.
const permBits = 0o7777

// Write writes entries to w as a tar archive, sorted by name, every entry
// stamped with mtime (whole seconds, UTC), no access or change times, no
// user or group names. Every entry's parent directory must be listed too,
// so that an extracting tool never invents one with its own defaults.
func Write(w io.Writer, entries []Entry, mtime time.Time) error {
	if err := check(entries); err != nil {
		return err
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })

	mtime = mtime.UTC().Truncate(time.Second)
	tw := tar.NewWriter(w)
	for _, e := range sorted {
		hdr := &tar.Header{
			Name:    e.Name,
			Mode:    e.Mode,
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: mtime,
			// Format is left to the writer: USTAR for everything this
			// package is given (short names, whole-second times), PAX only
			// if a value does not fit. Either choice depends on the header
			// alone, so it is as deterministic as the header.
		}
		if e.IsDir() {
			hdr.Typeflag = tar.TypeDir
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("tar header of %s: %w", e.Name, err)
			}
			continue
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = e.Size
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar header of %s: %w", e.Name, err)
		}
		if err := copyContent(tw, e); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finishing tar archive: %w", err)
	}
	return nil
}

func copyContent(tw *tar.Writer, e Entry) error {
	rc, err := e.Open()
	if err != nil {
		return fmt.Errorf("opening %s: %w", e.Name, err)
	}
	defer rc.Close()
	n, err := io.Copy(tw, rc)
	if err != nil {
		return fmt.Errorf("writing %s: %w", e.Name, err)
	}
	if n != e.Size {
		// The file changed between listing and writing: refuse rather than
		// archive something other than what was described.
		return fmt.Errorf("writing %s: content is %d bytes, expected %d", e.Name, n, e.Size)
	}
	return rc.Close()
}

// check refuses names that are not clean relative paths, duplicates,
// entries whose parent directory is missing, and malformed entries.
func check(entries []Entry) error {
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		trimmed := strings.TrimSuffix(e.Name, "/")
		switch {
		case trimmed == "" || path.IsAbs(trimmed) || path.Clean(trimmed) != trimmed ||
			trimmed == ".." || strings.HasPrefix(trimmed, "../"):
			return fmt.Errorf("tar entry %q: not a clean relative path", e.Name)
		case names[e.Name]:
			return fmt.Errorf("tar entry %q: listed twice", e.Name)
		case e.Mode&^permBits != 0 || e.Mode < 0:
			return fmt.Errorf("tar entry %q: mode %#o has bits other than permissions", e.Name, e.Mode)
		case e.UID < 0 || e.GID < 0:
			return fmt.Errorf("tar entry %q: negative owner", e.Name)
		case e.IsDir() && (e.Open != nil || e.Size != 0):
			return fmt.Errorf("tar entry %q: a directory has no content", e.Name)
		case !e.IsDir() && (e.Open == nil || e.Size < 0):
			return fmt.Errorf("tar entry %q: a file needs content", e.Name)
		}
		names[e.Name] = true
	}
	for _, e := range entries {
		if dir := path.Dir(strings.TrimSuffix(e.Name, "/")); dir != "." && !names[dir+"/"] {
			return fmt.Errorf("tar entry %q: parent directory %q is not listed", e.Name, dir+"/")
		}
	}
	return nil
}
