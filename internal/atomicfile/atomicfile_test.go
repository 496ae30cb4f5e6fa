package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "record.json")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new" {
		t.Fatalf("read %q, %v", b, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	assertOnly(t, dir, "record.json")
}

func TestWriteFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(path, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
}

// TestConcurrent checks that concurrent writers of one path never share a
// temporary file: the result is one writer's whole content.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := WriteFile(path, []byte(strings.Repeat(string(rune('a'+i)), 1<<16)), 0o600); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 1<<16 || strings.Count(string(b), string(b[:1])) != len(b) {
		t.Fatalf("mixed content (%d bytes), %v", len(b), err)
	}
	assertOnly(t, dir, "f")
}

func TestAbortAndFailedCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(dir, TempPattern(path), 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.Abort()
	f.Abort() // idempotent
	assertOnly(t, dir, "f")

	// A rename that fails (the target is a non-empty directory) leaves
	// neither the temporary file nor a changed target.
	if err := os.MkdirAll(filepath.Join(dir, "d", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "d"), []byte("new"), 0o600); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("target changed to %q", b)
	}
	assertOnly(t, dir, "d", "f")
}

func TestAfterRenameAndNoSync(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f, err := Create(dir, "w-*", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	f.NoSync = true
	var seen string
	f.AfterRename = func() { b, _ := os.ReadFile(path); seen = string(b) }
	if _, err := f.WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(path); err != nil {
		t.Fatal(err)
	}
	if seen != "abc" {
		t.Fatalf("AfterRename saw %q, want the new content", seen)
	}
	if err := f.Commit(path); err == nil {
		t.Fatal("second Commit succeeded")
	}
	assertOnly(t, dir, "f")
}

func TestDirNotSynced(t *testing.T) {
	// The directory is removed between the rename and its sync (an
	// AfterRename crash point), so only the sync fails.
	dir := filepath.Join(t.TempDir(), "sub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := Create(dir, "w-*", 0)
	if err != nil {
		t.Fatal(err)
	}
	f.AfterRename = func() { os.RemoveAll(dir) }
	if err := f.Commit(filepath.Join(dir, "f")); !errors.Is(err, ErrDirNotSynced) {
		t.Fatalf("err = %v, want ErrDirNotSynced", err)
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("directory holds %v, want %v", got, names)
	}
}

// ReadFile returns a file of up to limit bytes and refuses, with
// ErrCorrupt, a larger one (even a sparse one it could not afford to read)
// and a directory; a missing file is
// fs.ErrNotExist.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 1<<40); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		path  string
		limit int64
		want  error // nil: the file's content
	}{
		{"at the limit", path, 5, nil},
		{"under the limit", path, 100, nil},
		{"over the limit", path, 4, errdefs.ErrCorrupt},
		{"sparse and huge", huge, 1 << 20, errdefs.ErrCorrupt},
		{"directory", dir, 1 << 20, errdefs.ErrCorrupt},
		{"missing", filepath.Join(dir, "none"), 1 << 20, fs.ErrNotExist},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ReadFile(tc.path, tc.limit)
			if tc.want == nil {
				if err != nil || string(b) != "12345" {
					t.Fatalf("ReadFile = %q, %v; want the content", b, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || b != nil {
				t.Fatalf("ReadFile = %d bytes, %v; want %v", len(b), err, tc.want)
			}
		})
	}
}
