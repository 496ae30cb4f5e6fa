package rewrite

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

const counterPkg = "internal/rewrite/testdata/counter"

// snapshot is what thaw captures of an instance: memory and globals.
type snapshot struct {
	mem     []byte
	globals []uint64
}

func capture(t *testing.T, mod api.Module, info *Info) snapshot {
	t.Helper()
	mem, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok {
		t.Fatal("read memory")
	}
	s := snapshot{mem: bytes.Clone(mem)}
	for _, g := range info.Globals {
		eg := mod.ExportedGlobal(g.Export)
		if eg == nil {
			t.Fatalf("global %d not exported as %q", g.Index, g.Export)
		}
		s.globals = append(s.globals, eg.Get())
	}
	return s
}

func call(t *testing.T, mod api.Module, name string, args ...uint64) int64 {
	t.Helper()
	res, err := mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s%v: %v", name, args, err)
	}
	return int64(res[0])
}

// TestRestoreContinues boots the instrumented Go reactor, mutates its state,
// snapshots it, and checks that instances of the restore module resume
// exactly where the original left off.
func TestRestoreContinues(t *testing.T) {
	ctx := context.Background()
	src := testwasm.Build(t, counterPkg)
	boot, info, err := Instrument(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"_initialize", "step", "sum"} {
		if !hasString(info.Exports, name) {
			t.Errorf("Exports %v lacks %q", info.Exports, name)
		}
	}
	if len(info.Globals) == 0 {
		t.Fatal("Go module reported no globals")
	}

	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	bootMod, err := rt.InstantiateWithConfig(ctx, boot, wazero.NewModuleConfig().WithName("boot").WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		call(t, bootMod, "step", uint64(i))
	}
	snap := capture(t, bootMod, info)
	pages := uint32(len(snap.mem) / 65536)
	if pages <= info.MemoryMinPages {
		t.Logf("memory did not grow beyond the minimum (%d pages)", pages)
	}

	restoreWasm, err := ForRestore(boot, pages)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := rt.CompileModule(ctx, restoreWasm)
	if err != nil {
		t.Fatal(err)
	}
	// Two clones of one snapshot must both follow the original.
	var clones []api.Module
	for _, name := range []string{"clone1", "clone2"} {
		mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName(name).WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		mem := mod.Memory()
		if got := mem.Size(); got != pages*65536 {
			t.Fatalf("%s: memory is %d bytes, want %d pages", name, got, pages)
		}
		raw, _ := mem.Read(0, mem.Size())
		if i := bytes.IndexFunc(raw, func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("%s: memory not zero at %d before restore: data segments were applied", name, i)
		}
		if !mem.Write(0, snap.mem) {
			t.Fatal("write memory")
		}
		for i, g := range info.Globals {
			mg, ok := mod.ExportedGlobal(g.Export).(api.MutableGlobal)
			if !ok {
				if g.Mutable {
					t.Fatalf("global %d (%s) is not mutable in the restore module", g.Index, g.Export)
				}
				continue
			}
			mg.Set(snap.globals[i])
		}
		clones = append(clones, mod)
	}
	for i := 300; i < 2300; i++ {
		want := call(t, bootMod, "step", uint64(i))
		for j, c := range clones {
			if got := call(t, c, "step", uint64(i)); got != want {
				t.Fatalf("clone %d step(%d) = %d, original %d", j+1, i, got, want)
			}
		}
	}
	want := call(t, bootMod, "sum")
	for j, c := range clones {
		if got := call(t, c, "sum"); got != want {
			t.Fatalf("clone %d sum() = %d, original %d", j+1, got, want)
		}
	}
}

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestInstrumentGoModule(t *testing.T) {
	src := testwasm.Build(t, counterPkg)
	boot, info, err := Instrument(src)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range info.Globals {
		if g.Index != uint32(i) {
			t.Errorf("global %d has Index %d", i, g.Index)
		}
		if !strings.HasPrefix(g.Export, GlobalPrefix) {
			t.Errorf("global %d exported as %q, want the %q prefix (Go exports no globals)", i, g.Export, GlobalPrefix)
		}
		if !g.Mutable {
			t.Errorf("global %d is immutable; Go's globals are all registers", i)
		}
	}
	t.Run("idempotent", func(t *testing.T) {
		again, info2, err := Instrument(boot)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(info, info2) {
			t.Errorf("Info changed:\n%+v\n%+v", info, info2)
		}
		if !bytes.Equal(boot, again) {
			t.Error("instrumenting a boot module changed it")
		}
	})
	t.Run("restore of restore", func(t *testing.T) {
		r1, err := ForRestore(boot, info.MemoryMinPages+3)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ForRestore(r1, info.MemoryMinPages+3)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r1, r2) {
			t.Error("ForRestore is not idempotent")
		}
		if len(r1) >= len(boot) {
			t.Errorf("restore module (%d bytes) not smaller than boot (%d): data kept?", len(r1), len(boot))
		}
	})
}

// TestMalformed feeds garbage and every kind of truncation: each must fail
// with ErrInvalid, never panic.
func TestMalformed(t *testing.T) {
	src := testwasm.Build(t, counterPkg)
	cases := map[string][]byte{
		"nil":          nil,
		"garbage":      []byte("this is not a wasm module at all"),
		"magic only":   []byte("\x00asm"),
		"bad version":  []byte("\x00asm\x02\x00\x00\x00"),
		"section cut":  []byte("\x00asm\x01\x00\x00\x00\x01\x05\x01"),
		"unknown id":   []byte("\x00asm\x01\x00\x00\x00\x0d\x00"),
		"size overrun": []byte("\x00asm\x01\x00\x00\x00\x05\xff\xff\xff\xff\x0f"),
		"leb overflow": []byte("\x00asm\x01\x00\x00\x00\x05\xff\xff\xff\xff\x7f"),
	}
	for _, n := range []int{9, 10, 100, 1000, len(src) / 3, len(src) / 2, len(src) - 1} {
		cases["truncated at "+strconv.Itoa(n)] = src[:n]
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Instrument(b); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Instrument: err = %v, want ErrInvalid", err)
			}
			if _, err := ForRestore(b, 100); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("ForRestore: err = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestOneModule: a Go reactor's restore module can boot it (no start
// function, no data count, constant offsets), and Data lists its active
// segments; a start function rules that out.
func TestOneModule(t *testing.T) {
	src := testwasm.Build(t, counterPkg)
	_, info, err := Instrument(src)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decode(src)
	if err != nil {
		t.Fatal(err)
	}
	if !info.OneModule || len(info.Data) != len(m.DataSection) || len(info.Data) == 0 {
		t.Fatalf("Go reactor: OneModule %v, %d segments of %d", info.OneModule, len(info.Data), len(m.DataSection))
	}
	for i, d := range m.DataSection {
		if !bytes.Equal(info.Data[i].Bytes, d.Init) {
			t.Fatalf("segment %d differs", i)
		}
	}
	start := uint32(0)
	m.StartSection = &start
	withStart, err := encode(m)
	if err != nil {
		t.Fatal(err)
	}
	_, info, err = Instrument(withStart)
	if err != nil {
		t.Fatal(err)
	}
	if info.OneModule || info.Data != nil {
		t.Fatalf("module with a start function: OneModule %v, %d segments; want the boot module", info.OneModule, len(info.Data))
	}
}
