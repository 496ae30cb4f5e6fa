package build

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestDefaultOutput(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"examples/hello", "hello.wasm"},
		{"/tmp/fn/", "fn.wasm"},
		{"/", "function.wasm"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			if got := DefaultOutput(tc.dir); got != tc.want {
				t.Errorf("DefaultOutput(%q) = %q, want %q", tc.dir, got, tc.want)
			}
		})
	}
}

// writeModule writes a standalone Go module in a temp dir.
func writeModule(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"go.mod": "module example.com/fn\n\ngo 1.24\n", "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestModule(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain")
	}
	ctx := context.Background()
	t.Run("reactor", func(t *testing.T) {
		dir := writeModule(t, "package main\n\n//go:wasmexport answer\nfunc answer() int32 { return 42 }\n\nfunc main() {}\n")
		out := filepath.Join(t.TempDir(), "fn.wasm")
		if err := Module(ctx, dir, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil || !bytes.HasPrefix(b, []byte("\x00asm")) {
			t.Fatalf("output is not wasm (%v)", err)
		}
	})
	t.Run("compile error", func(t *testing.T) {
		dir := writeModule(t, "package main\n\nfunc main() { undefinedThing() }\n")
		err := Module(ctx, dir, filepath.Join(t.TempDir(), "fn.wasm"))
		if !errors.Is(err, errdefs.ErrInvalid) || !bytes.Contains([]byte(err.Error()), []byte("undefinedThing")) {
			t.Errorf("err = %v, want ErrInvalid naming the undefined symbol", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		err := Module(ctx, filepath.Join(t.TempDir(), "nope"), "x.wasm")
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("no go", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		err := Module(ctx, writeModule(t, "package main\n\nfunc main() {}\n"), filepath.Join(t.TempDir(), "fn.wasm"))
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "PATH") {
			t.Errorf("err = %v, want ErrUnavailable explaining that go is not on PATH", err)
		}
	})
}
