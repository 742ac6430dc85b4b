package stabletar

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

var mtime = time.Unix(1700000000, 0)

func entries() []Entry {
	return []Entry{
		File("prog", 0o555, 0, 0, []byte("binary")),
		Dir("etc/", 0o755, 0, 0),
		File("etc/passwd", 0o644, 0, 0, []byte("root:x:0:0::/:/sbin/nologin\n")),
		Dir("home/", 0o755, 0, 0),
		Dir("home/nonroot/", 0o700, 65532, 65532),
		Dir("tmp/", 0o1777, 0, 0),
	}
}

func write(t *testing.T, es []Entry, at time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, es, at); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestOrderDoesNotMatter(t *testing.T) {
	a := write(t, entries(), mtime)
	reversed := entries()
	slices.Reverse(reversed)
	if b := write(t, reversed, mtime); !bytes.Equal(a, b) {
		t.Fatal("archives of the same entries in another order differ")
	}
	// Sub-second parts and time zones of the stamp change nothing either.
	if c := write(t, entries(), mtime.Add(999*time.Millisecond).In(time.FixedZone("X", 3600))); !bytes.Equal(a, c) {
		t.Fatal("archives stamped with the same second differ")
	}
}

func TestHeaders(t *testing.T) {
	tr := tar.NewReader(bytes.NewReader(write(t, entries(), mtime)))
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(mtime) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v %v %v, want only the mtime %v", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, mtime)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q/%q written", h.Name, h.Uname, h.Gname)
		}
		if len(h.PAXRecords) != 0 {
			t.Errorf("%s: PAX records %v", h.Name, h.PAXRecords)
		}
		want := map[string]struct {
			mode     int64
			uid      int
			typeflag byte
		}{
			"prog":          {0o555, 0, tar.TypeReg},
			"tmp/":          {0o1777, 0, tar.TypeDir},
			"home/nonroot/": {0o700, 65532, tar.TypeDir},
		}[h.Name]
		if want.typeflag != 0 && (h.Mode != want.mode || h.Uid != want.uid || h.Gid != want.uid || h.Typeflag != want.typeflag) {
			t.Errorf("%s: mode %#o uid %d gid %d type %c, want %#o %d %c", h.Name, h.Mode, h.Uid, h.Gid, h.Typeflag, want.mode, want.uid, want.typeflag)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
}

func TestRefuses(t *testing.T) {
	file := func(name string) Entry { return File(name, 0o644, 0, 0, []byte("x")) }
	tests := []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"missing parent", []Entry{file("etc/passwd")}, `parent directory "etc/" is not listed`},
		{"duplicate", []Entry{file("a"), file("a")}, "listed twice"},
		{"absolute", []Entry{file("/a")}, "not a clean relative path"},
		{"dot-dot", []Entry{file("../a")}, "not a clean relative path"},
		{"unclean", []Entry{Dir("a/", 0o755, 0, 0), file("a//b")}, "not a clean relative path"},
		{"empty", []Entry{file("")}, "not a clean relative path"},
		{"file type bits", []Entry{File("a", 0o100644, 0, 0, nil)}, "bits other than permissions"},
		{"negative owner", []Entry{File("a", 0o644, -1, 0, nil)}, "negative owner"},
		{"directory with content", []Entry{{Name: "d/", Mode: 0o755, Size: 1}}, "a directory has no content"},
		{"file without content", []Entry{{Name: "f", Mode: 0o644}}, "a file needs content"},
		{"content shorter than said", []Entry{{Name: "f", Mode: 0o644, Size: 5, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("abc")), nil
		}}}, "content is 3 bytes, expected 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(io.Discard, tt.entries, mtime)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
