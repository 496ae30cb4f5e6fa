package worker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// TestDataDirModes: everything a deploy, a restore that records a working
// set and a policy checkpoint write under the data directory (guest memory
// in clear among it) is its owner's alone: files 0600, directories 0700.
func TestDataDirModes(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "modes", "examples/hello", Config{RestoreMode: api.ModeBulk, Policy: "fixed:1"})
	for range 2 {
		invoke(t, w, "modes", get("/?name=x"), InvokeOptions{Mode: restore.Bulk})
	}
	f, err := w.lookup("modes")
	if err != nil {
		t.Fatal(err)
	}
	f.background.Wait()
	var files, snaps int
	err = filepath.Walk(w.dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if path == w.dir || fi.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		if fi.IsDir() {
			if fi.Mode().Perm() != snapshot.DirMode {
				t.Errorf("%s: directory mode %v, want %v", path, fi.Mode().Perm(), snapshot.DirMode)
			}
			return nil
		}
		files++
		if filepath.Base(path) == snapshot.ImageFile {
			snaps++
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: file mode %v, want none for group and others", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if snaps == 0 || files < 6 {
		t.Fatalf("walked %d files, %d snapshot images: nothing checked", files, snaps)
	}
}
