package wazero

import (
	"context"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/engine/enginetest"
	"github.com/thaw-run/thaw/internal/testwasm"
)

func open(t *testing.T) engine.Engine {
	e, err := New(context.Background(), engine.Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConformance(t *testing.T) { enginetest.Run(t, open) }

// Snapshots of two sizes restore through one compiled restore module.
func TestOneRestoreModule(t *testing.T) {
	ctx := context.Background()
	e := open(t)
	defer e.Close(ctx)
	mi, err := e.Compile(ctx, testwasm.Build(t, "examples/hello"))
	if err != nil {
		t.Fatal(err)
	}
	m := mi.(*Module)
	inst, _, err := m.Boot(ctx, enginetest.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	st, mem := inst.Capture()
	var compiled any
	for _, pages := range []uint32{st.Pages, st.Pages + 16} {
		region := enginetest.Region(t, enginetest.Cfg.MemoryLimit, mem)
		s := *st
		s.Pages = pages
		r, err := m.Restore(ctx, enginetest.Cfg, &s, region)
		if err != nil {
			t.Fatal(err)
		}
		r.Close(ctx)
		if compiled == nil {
			compiled = m.restore
		} else if compiled != m.restore {
			t.Error("a second snapshot size compiled a second restore module")
		}
	}
}
