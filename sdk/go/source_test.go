package thaw_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

// SourceFS is what `thaw new` gives a function as the SDK: it must hold
// every file the module needs to build, byte for byte, so a package or a
// file added to the SDK cannot be left out of functions' copies.
func TestSourceFSIsTheWholeModule(t *testing.T) {
	var want []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (path == "go.mod" || strings.HasSuffix(path, ".go")) {
			want = append(want, filepath.ToSlash(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range want {
		got, err := fs.ReadFile(thaw.SourceFS, path)
		if err != nil {
			t.Errorf("%s is not in SourceFS (add it to the go:embed line in source.go): %v", path, err)
			continue
		}
		if disk, _ := os.ReadFile(path); string(got) != string(disk) {
			t.Errorf("%s in SourceFS differs from the file", path)
		}
	}
	if len(want) < 10 {
		t.Errorf("found %d source files, want the SDK's (go.mod, thaw.go, wire/wire.go, ...): %v", len(want), want)
	}
}
