package rewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tetratelabs/wabin/leb128"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// Hand-made modules, byte by byte, for the cases Go's toolchain never emits.

func module(sections ...[]byte) []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Join(sections, nil)...)
}

func section(id byte, body ...byte) []byte {
	return append(append([]byte{id}, leb128.EncodeUint32(uint32(len(body)))...), body...)
}

func name(s string) []byte { return append(leb128.EncodeUint32(uint32(len(s))), s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	maxU32     = []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	oneMemory  = section(5, 1, 0x00, 1)
	importMem  = section(2, cat([]byte{1}, name("env"), name("mem"), []byte{0x02, 0x00, 1})...)
	oneGlobal  = section(6, 1, 0x7f, 0x01, 0x41, 0x00, 0x0b) // mutable i32 = 0
	voidType   = section(1, 1, 0x60, 0, 0)
	oneFunc    = section(3, 1, 0)
	startFunc0 = section(8, 0)
)

// TestRejected covers modules thaw cannot snapshot or that are malformed in
// ways wabin alone would not catch, or would catch only after allocating
// what the module claims.
func TestRejected(t *testing.T) {
	cases := []struct {
		name string
		wasm []byte
		want string // substring of the error
	}{
		{"imported memory", module(importMem), "imports its memory"},
		{"imported global", module(section(2, cat([]byte{1}, name("env"), name("g"), []byte{0x03, 0x7f, 0x01})...), oneMemory), "imports global"},
		{"no memory", module(oneGlobal), "defines no memory"},
		{"two memories in one section", module(section(5, 2, 0, 1, 0, 1)), "memor"},
		{"two memory sections", module(oneMemory, oneMemory), "out of order or repeated"},
		{"imported and defined memory", module(importMem, oneMemory), "2 memories"},
		{"sections out of order", module(oneGlobal, oneMemory), "out of order"},
		{"shared memory", module(section(5, 1, 0x03, 1, 2)), "limits flag"},
		{"huge global count", module(section(6, maxU32...)), "exceeds"},
		{"huge data segment", module(oneMemory, section(11, cat([]byte{1, 0x01}, maxU32)...)), "exceeds"},
		{"huge locals", module(voidType, oneFunc, section(10, 1, 8, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b)), "locals"},
		{"huge element vector", module(section(4, 1, 0x70, 0x00, 0), section(9, cat([]byte{1, 0, 0x41, 0, 0x0b}, maxU32)...)), "exceeds"},
		{"huge name map", module(oneMemory, section(0, cat(name("name"), []byte{1, 5}, maxU32)...)), "exceeds"},
		{"huge custom name", module(section(0, maxU32...)), ""},
		{"bad constant expression", module(oneMemory, section(6, 1, 0x7f, 0x01, 0x6a, 0x0b)), "constant expression"},
		{"export name collision", module(oneMemory, oneGlobal, section(7, cat([]byte{1}, name("thaw.g0"), []byte{0x02, 0})...)), "thaw.g0"},
		{"function count mismatch", module(voidType, oneFunc, oneMemory), "inconsistent"},
		{"trailing bytes in section", module(section(5, 1, 0x00, 1, 0)), "trailing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Instrument(c.wasm)
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %q, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestForRestorePages(t *testing.T) {
	bounded := module(section(5, 1, 0x01, 2, 10))
	unbounded := module(section(5, 1, 0x00, 2))
	cases := []struct {
		name  string
		wasm  []byte
		pages uint32
		ok    bool
	}{
		{"at minimum", bounded, 2, true},
		{"at maximum", bounded, 10, true},
		{"above maximum", bounded, 11, false},
		{"below minimum", bounded, 1, false},
		{"unbounded", unbounded, 65536, true},
		{"beyond 4 GiB", unbounded, 65537, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := ForRestore(c.wasm, c.pages)
			if !c.ok {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if m.MemorySection.Min != c.pages {
				t.Errorf("minimum = %d, want %d", m.MemorySection.Min, c.pages)
			}
		})
	}
}

func TestExportedGlobals(t *testing.T) {
	// Global 0 is exported by the module as "sp", global 1 is immutable and
	// unexported, global 2 is exported twice.
	wasm := module(
		oneMemory,
		section(6, 3, 0x7f, 0x01, 0x41, 0x05, 0x0b, 0x7e, 0x00, 0x42, 0x07, 0x0b, 0x7c, 0x01, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b),
		section(7, cat([]byte{3}, name("sp"), []byte{0x03, 0}, name("a"), []byte{0x03, 2}, name("b"), []byte{0x03, 2})...),
	)
	boot, info, err := Instrument(wasm)
	if err != nil {
		t.Fatal(err)
	}
	want := []Global{
		{Index: 0, Export: "sp", Type: 0x7f, Mutable: true},
		{Index: 1, Export: "thaw.g1", Type: 0x7e, Mutable: false},
		{Index: 2, Export: "a", Type: 0x7c, Mutable: true},
	}
	if !reflect.DeepEqual(info.Globals, want) {
		t.Errorf("Globals = %+v, want %+v", info.Globals, want)
	}
	m, err := decode(boot)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.ExportSection); n != 4 {
		t.Errorf("boot module has %d exports, want 4 (one added)", n)
	}
	_, info2, err := Instrument(boot)
	if err != nil || !reflect.DeepEqual(info, info2) {
		t.Errorf("second Instrument: %+v, %v; want %+v", info2, err, info)
	}
}

// TestStartAndData checks on a real runtime that the restore module neither
// runs the start function nor applies active data segments.
func TestStartAndData(t *testing.T) {
	// start: i32.store8 (i32.const 0) (i32.const 42)
	wasm := module(
		voidType, oneFunc,
		section(5, 1, 0x01, 1, 4),
		startFunc0,
		section(10, 1, 9, 0, 0x41, 0, 0x41, 42, 0x3a, 0, 0, 0x0b),
		section(11, cat([]byte{1, 0, 0x41, 16, 0x0b}, name("hello"))...),
	)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	boot, _, err := Instrument(wasm)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := rt.InstantiateWithConfig(ctx, boot, wazero.NewModuleConfig().WithName("boot"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := bm.Memory().Read(0, 21); b[0] != 42 || string(b[16:]) != "hello" {
		t.Fatalf("boot module did not initialise memory: %q", b)
	}
	restore, err := ForRestore(boot, 3)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := rt.InstantiateWithConfig(ctx, restore, wazero.NewModuleConfig().WithName("restore"))
	if err != nil {
		t.Fatal(err)
	}
	assertZero(t, rm.Memory(), 3)
}

// TestDataCount covers a module that names data segments in code: wabin's
// encoder drops the data count section, so encode must restore it or
// wazero rejects the module; memory.init must behave alike in boot and
// restore instances, for passive and formerly active segments.
func TestDataCount(t *testing.T) {
	wasm := module(
		section(1, 1, 0x60, 1, 0x7f, 0),
		section(3, 2, 0, 0),
		section(5, 1, 0x00, 1),
		section(7, cat([]byte{2}, name("init1"), []byte{0, 0}, name("init0"), []byte{0, 1})...),
		section(12, 2),
		section(10, 2,
			// init1(dst): memory.init 1 (dst, 0, 3)
			12, 0, 0x20, 0, 0x41, 0, 0x41, 3, 0xfc, 0x08, 1, 0, 0x0b,
			// init0(n): memory.init 0 (100, 0, n)
			13, 0, 0x41, 0xe4, 0x00, 0x41, 0, 0x20, 0, 0xfc, 0x08, 0, 0, 0x0b),
		section(11, cat([]byte{2, 0, 0x41, 0, 0x0b}, name("abc"), []byte{1}, name("xyz"))...),
	)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	boot, _, err := Instrument(wasm)
	if err != nil {
		t.Fatal(err)
	}
	restore, err := ForRestore(boot, 1)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, c := range []struct {
		name string
		wasm []byte
	}{{"boot", boot}, {"restore", restore}} {
		mod, err := rt.InstantiateWithConfig(ctx, c.wasm, wazero.NewModuleConfig().WithName(c.name))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.name == "restore" {
			assertZero(t, mod.Memory(), 1)
		}
		if _, err := mod.ExportedFunction("init1").Call(ctx, 200); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if b, _ := mod.Memory().Read(200, 3); string(b) != "xyz" {
			t.Errorf("%s: passive segment gave %q", c.name, b)
		}
		_, err = mod.ExportedFunction("init0").Call(ctx, 3)
		b, _ := mod.Memory().Read(100, 3)
		outcomes = append(outcomes, fmt.Sprintf("err=%v mem=%q", err != nil, b))
	}
	if outcomes[0] != outcomes[1] {
		t.Errorf("memory.init of the active segment: boot %s, restore %s", outcomes[0], outcomes[1])
	}
}

func assertZero(t *testing.T, mem api.Memory, pages uint32) {
	t.Helper()
	if mem.Size() != pages*65536 {
		t.Fatalf("memory is %d bytes, want %d pages", mem.Size(), pages)
	}
	b, _ := mem.Read(0, mem.Size())
	if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("memory not zero at %d", i)
	}
}

// FuzzInstrument checks that no input panics or escapes ErrInvalid, and that
// whatever Instrument accepts it accepts again unchanged and can derive a
// restore module from.
func FuzzInstrument(f *testing.F) {
	src := testwasm.Build(f, counterPkg)
	f.Add(src)
	for _, n := range []int{8, 9, 12, 64, 4096, len(src) / 2} {
		f.Add(src[:n])
	}
	f.Add(module(oneMemory, oneGlobal, section(7, cat([]byte{1}, name("g"), []byte{0x03, 0})...)))
	f.Add(module(voidType, oneFunc, section(5, 1, 0x01, 1, 4), startFunc0, section(10, 1, 9, 0, 0x41, 0, 0x41, 42, 0x3a, 0, 0, 0x0b),
		section(11, cat([]byte{1, 0, 0x41, 16, 0x0b}, name("hello"))...)))
	f.Add(module(section(4, 1, 0x70, 0x00, 0), oneMemory, section(9, 1, 0, 0x41, 0, 0x0b, 0), section(12, 1), section(11, cat([]byte{1, 1}, name("x"))...),
		section(0, cat(name("name"), []byte{1, 4, 1, 0, 1, 'f'})...)))
	f.Fuzz(func(t *testing.T, b []byte) {
		boot, info, err := Instrument(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		again, info2, err := Instrument(boot)
		if err != nil {
			t.Fatalf("boot module rejected: %v", err)
		}
		if !reflect.DeepEqual(info, info2) || !bytes.Equal(boot, again) {
			t.Fatalf("Instrument not idempotent: %+v vs %+v", info, info2)
		}
		if _, err := ForRestore(boot, info.MemoryMinPages); err != nil && !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("ForRestore: %v", err)
		}
	})
}
