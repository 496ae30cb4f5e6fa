package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	thaw "github.com/thaw-run/thaw/sdk/go"
	thawjs "github.com/thaw-run/thaw/sdk/js"
)

// SDKModule is the Go SDK's module path. No public module proxy serves it:
// a function's go.mod replaces it with the copy this binary carries (see
// InstallSDK).
const SDKModule = "github.com/thaw-run/thaw/sdk/go"

// SDKDir returns the directory that holds this binary's copy of the SDK:
// thaw/sdk/go/VERSION under the user's cache directory ($XDG_CACHE_HOME or
// ~/.cache on Linux), where VERSION is a digest of the SDK's files. A
// thaw binary carrying another SDK uses another directory, so a function
// keeps building against the SDK it was created with.
func SDKDir() (string, error) { return goSDK.dir() }

// InstallSDK writes the SDK this binary carries into SDKDir, unless it is
// there already, and returns the directory. The files are written to a
// temporary sibling first and renamed into place, so a concurrent or
// interrupted install never leaves a partial SDK behind.
func InstallSDK() (string, error) { return goSDK.install() }

// goSDK and jsRuntime are the Go modules this binary carries.
var (
	goSDK     = carried{lang: "go", what: "the Go SDK", fsys: thaw.SourceFS}
	jsRuntime = carried{lang: "js", what: "the JavaScript runtime", fsys: thawjs.SourceFS}
)

// carried is a Go module whose source this binary embeds and installs in
// the user's cache: no public module proxy serves it.
type carried struct {
	lang, what string
	fsys       fs.FS
}

// dir is thaw/sdk/LANG/VERSION under the user's cache directory, VERSION
// a digest of the module's files.
func (c carried) dir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("%s's cache directory: %w", c.what, err)
	}
	sum, err := c.digest()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "thaw", "sdk", c.lang, sum), nil
}

// digest is the first 12 hex digits of the SHA-256 over the module's file
// names and contents, in fs.WalkDir's (lexical) order.
func (c carried) digest() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(c.fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(c.fsys, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s's embedded source: %w", c.what, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// install writes the module into dir unless it is there already, through
// a temporary sibling renamed into place.
func (c carried) install() (string, error) {
	dir, err := c.dir()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("install %s: %w", c.what, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-")
	if err != nil {
		return "", fmt.Errorf("install %s: %w", c.what, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.CopyFS(tmp, c.fsys); err != nil {
		return "", fmt.Errorf("install %s: %w", c.what, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "go.mod")); statErr == nil {
			return dir, nil // another process installed it first
		}
		return "", fmt.Errorf("install %s: %w", c.what, err)
	}
	return dir, nil
}

// supplySDK reinstalls this binary's SDK when the go.mod of the module
// holding dir replaces SDKModule with SDKDir and that directory is missing
// (the user cleared their cache). Anything else is left to the go command,
// whose errors are clearer than a guess: a module without go.mod, one that
// takes the SDK from elsewhere, or one created by a thaw carrying another
// SDK.
func supplySDK(ctx context.Context, gotool, dir string) error {
	want, err := SDKDir()
	if err != nil {
		return nil // no cache directory: nothing can point at it
	}
	cmd := exec.CommandContext(ctx, gotool, "mod", "edit", "-json")
	cmd.Dir = dir
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return nil // no go.mod: go build says so
	}
	var mod struct {
		Replace []struct{ Old, New struct{ Path string } }
	}
	if err := json.Unmarshal(stdout.Bytes(), &mod); err != nil {
		return fmt.Errorf("build %s: go mod edit -json: %w", dir, err)
	}
	for _, r := range mod.Replace {
		if r.Old.Path != SDKModule || filepath.Clean(r.New.Path) != want {
			continue
		}
		if _, err := os.Stat(want); errors.Is(err, fs.ErrNotExist) {
			_, err = InstallSDK()
			return err
		}
	}
	return nil
}
