//go:build cgo

package wasmtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// reactor is the smallest thaw reactor, plus extra in its import section.
func reactor(t *testing.T, extra string) []byte {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(`(module ` + extra + `
		(memory (export "memory") 1)
		(global $g (mut i32) (i32.const 7))
		(func (export "_initialize") (global.set $g (i32.const 8)))
		(func (export "thaw_alloc") (param i32) (result i32) (i32.const 1024))
		(func (export "thaw_handle") (param i32 i32) (result i64) (i64.const 0)))`)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// A module importing anything but the WASI functions the engine provides
// is refused at compile time.
func TestCompileRejectsUnknownImports(t *testing.T) {
	e := newEngine(t)
	for name, imp := range map[string]string{
		"other module":  `(import "env" "f" (func))`,
		"unknown WASI":  `(import "wasi_snapshot_preview1" "no_such_call" (func))`,
		"memory import": `(import "env" "mem" (memory 1))`,
	} {
		_, err := e.Compile(context.Background(), reactor(t, imp))
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := e.Compile(context.Background(), reactor(t, `(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))`)); err != nil {
		t.Fatalf("a WASI import: %v", err)
	}
}

// The compilation cache: a compiled module is stored once; a damaged,
// truncated or foreign entry is compiled again and replaced, and the module
// still boots.
func TestCompilationCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := reactor(t, "")
	compileBoot := func() {
		t.Helper()
		e, err := New(ctx, engine.Config{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		m, err := e.Compile(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close(ctx)
		inst, _, err := m.Boot(ctx, engine.InstanceConfig{MemoryLimit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := inst.Capture(); len(st.Globals) == 0 || st.Globals[0] != 8 {
			t.Fatalf("state after boot %+v", st)
		}
		inst.Close(ctx)
	}
	compileBoot()
	files, _ := filepath.Glob(filepath.Join(dir, "wasmtime", "*.cwasm"))
	if len(files) != 1 {
		t.Fatalf("cache holds %v, want one module", files)
	}
	good, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"flipped byte": func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 1; return b }(),
		"truncated":    good[:len(good)/2],
		"empty":        {},
		"not wasmtime": func() []byte { b := []byte("not a module"); return append(b, sha(b)...) }(),
	} {
		if err := os.WriteFile(files[0], bad, 0o600); err != nil {
			t.Fatal(err)
		}
		compileBoot()
		if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, good) {
			t.Errorf("%s: the entry was not replaced", name)
		}
	}
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
