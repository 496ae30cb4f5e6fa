package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// thaw store reports what the store library finds: a published snapshot in
// stats and ls, a clean verify, and a tampered chunk as exit code
// ExitCorrupt.
func TestStoreCommand(t *testing.T) {
	key, err := store.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(store.EnvKey, key)
	dir := filepath.Join(t.TempDir(), "store")
	secret, _ := store.ParseSecret(key)
	ctx := context.Background()
	mem := make([]byte, engine.WasmPageSize)
	copy(mem, "some data")
	snap, err := snapshot.Write(filepath.Join(t.TempDir(), "s"), snapshot.Meta{State: engine.State{Pages: 1}}, mem)
	if err != nil {
		t.Fatal(err)
	}
	h, err := stack.Open(ctx, stack.Config{Tenant: "default", Secret: secret, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storesnap.Publish(ctx, h.Store, "fn.s1", snap); err != nil {
		t.Fatal(err)
	}
	h.Close()

	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"store", "stats", "--store-dir", dir}, ExitOK, "snapshots                1"},
		{[]string{"store", "stats", "--json", "--store-dir", dir}, ExitOK, `"snapshots": 1,`},
		{[]string{"store", "stats", "--json", "--store-dir", dir}, ExitOK, `"stored_bytes": `},
		{[]string{"store", "verify", "--json", "--store-dir", dir}, ExitOK, `"problems": `},
		{[]string{"store", "gc", "--json", "--store-dir", dir}, ExitOK, `"deleted_bytes": 0`},
		{[]string{"store", "ls", "--store-dir", dir}, ExitOK, "fn.s1"},
		{[]string{"store", "verify", "--store-dir", dir}, ExitOK, "verified 1 snapshots"},
		{[]string{"store", "gc", "--store-dir", dir}, ExitOK, "deleted 0"},
		{[]string{"store", "stats"}, ExitUsage, ""},
		{[]string{"store", "stats", "--store-dir", dir, "--tenant", "other"}, ExitOK, "snapshots                0"},
	}
	for _, s := range steps {
		t.Run(strings.Join(s.args, " "), func(t *testing.T) {
			code, out, errOut := run(t, s.args...)
			if code != s.code || !strings.Contains(out, s.want) {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q; want %q", code, s.code, out, errOut, s.want)
			}
		})
	}
	// Tamper with every chunk: verify lists problems and exits corrupt.
	err = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.Contains(fi.Name(), "chunks~") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		b[len(b)-1] ^= 1
		return os.WriteFile(path, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "store", "verify", "--store-dir", dir)
	if code != ExitCorrupt || !strings.Contains(out, "PROBLEM") {
		t.Fatalf("verify of a tampered store: exit %d, stdout %q", code, out)
	}
}
