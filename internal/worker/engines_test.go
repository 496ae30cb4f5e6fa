package worker

import (
	"context"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/faultguard"
)

// A worker's default engine is wasmtime in a build with cgo and wazero, its
// only engine, in one without (faultguard.Available tells the two builds
// apart: the guard needs cgo too).
func TestDefaultEngine(t *testing.T) {
	want := "wazero"
	if faultguard.Available {
		want = "wasmtime"
	}
	ctx := context.Background()
	es, err := openEngines(ctx, "", engine.Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer es.close(ctx)
	if es.def != want {
		t.Fatalf("default engine %q, want %q (this build has %v)", es.def, want, engine.Names())
	}
}
