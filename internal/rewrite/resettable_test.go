package rewrite

import (
	"testing"

	"github.com/tetratelabs/wabin/wasm"

	"github.com/thaw-run/thaw/internal/testwasm"
)

// A Go reactor's state is its memory and globals: Instrument finds no
// instruction that writes a table or drops a segment in it.
func TestResettableGoModule(t *testing.T) {
	_, info, err := Instrument(testwasm.Build(t, counterPkg))
	if err != nil {
		t.Fatal(err)
	}
	if !info.Resettable {
		t.Fatal("a Go reactor is not Resettable")
	}
}

// fixedBody decodes every immediate shape it knows and refuses every
// instruction that writes a table or drops a segment, any instruction it
// does not know, and a body cut inside an immediate.
func TestFixedBody(t *testing.T) {
	for _, c := range []struct {
		name string
		body []byte
		want bool
	}{
		{"empty function", []byte{0x0b}, true},
		{"blocks and branches", []byte{
			0x02, 0x40, // block
			0x03, 0x7f, // loop (result i32)
			0x41, 0xff, 0xff, 0xff, 0xff, 0x0f, // i32.const -1 (5 bytes)
			0x04, 0x40, 0x05, 0x0b, // if else end
			0x0c, 0x00, 0x0d, 0x01, // br 0, br_if 1
			0x0e, 0x02, 0x00, 0x01, 0x00, // br_table [0 1] 0
			0x0b, 0x0b, 0x0b}, true},
		{"calls and variables", []byte{
			0x10, 0x80, 0x01, // call 128
			0x11, 0x02, 0x00, // call_indirect type 2 table 0
			0x20, 0x00, 0x21, 0x01, 0x22, 0x02, 0x23, 0x00, 0x24, 0x00, // locals and globals
			0x25, 0x00, // table.get 0
			0x1a, 0x1b, 0x1c, 0x01, 0x7f, // drop, select, select (i32)
			0x0b}, true},
		{"memory", []byte{
			0x28, 0x02, 0x10, // i32.load align 2 offset 16
			0x37, 0x03, 0x80, 0x80, 0x04, // i64.store align 3 offset 65536
			0x28, 0x42, 0x00, 0x08, // i32.load, memory index 0 (align bit 6), offset 8
			0x3f, 0x00, 0x40, 0x00, // memory.size, memory.grow
			0xfc, 0x0a, 0x00, 0x00, 0xfc, 0x0b, 0x00, // memory.copy, memory.fill
			0xfc, 0x08, 0x00, 0x00, // memory.init
			0x0b}, true},
		{"constants and numbers", []byte{
			0x42, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, // i64.const, 10 bytes
			0x43, 0, 0, 0x80, 0x3f, // f32.const 1
			0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // f64.const 1
			0x6a, 0xa7, 0xc4, // i32.add, i32.wrap_i64, i64.extend32_s
			0xfc, 0x00, 0xfc, 0x07, // i32.trunc_sat_f32_s, i64.trunc_sat_f64_u
			0xd0, 0x70, 0xd1, 0xd2, 0x03, // ref.null func, ref.is_null, ref.func 3
			0xfc, 0x10, 0x00, // table.size
			0x0b}, true},
		{"table.set", []byte{0x26, 0x00, 0x0b}, false},
		{"table.init", []byte{0xfc, 0x0c, 0x00, 0x00, 0x0b}, false},
		{"elem.drop", []byte{0xfc, 0x0d, 0x00, 0x0b}, false},
		{"table.copy", []byte{0xfc, 0x0e, 0x00, 0x00, 0x0b}, false},
		{"table.grow", []byte{0xfc, 0x0f, 0x00, 0x0b}, false},
		{"table.fill", []byte{0xfc, 0x11, 0x00, 0x0b}, false},
		{"data.drop", []byte{0xfc, 0x09, 0x00, 0x0b}, false},
		{"an unknown 0xfc instruction", []byte{0xfc, 0x12, 0x0b}, false},
		{"SIMD", []byte{0xfd, 0x0c, 0x0b}, false},
		{"atomics", []byte{0xfe, 0x00, 0x0b}, false},
		{"exceptions", []byte{0x08, 0x00, 0x0b}, false},
		// The byte of table.set hidden in an immediate is no table.set.
		{"0x26 inside an immediate", []byte{0x41, 0x26, 0x10, 0x26, 0x0b}, true},
		{"cut inside an immediate", []byte{0x41, 0x80}, false},
		{"cut inside a memarg", []byte{0x28, 0x02}, false},
		{"cut after 0xfc", []byte{0xfc}, false},
	} {
		if got := fixedBody(c.body); got != c.want {
			t.Errorf("%s: fixedBody = %v, want %v", c.name, got, c.want)
		}
	}
}

// A module that imports or exports a table is not resettable, however
// plain its code: the host could write the table.
func TestResettableTables(t *testing.T) {
	plain := []*wasm.Code{{Body: []byte{0x0b}}}
	for _, c := range []struct {
		name string
		m    wasm.Module
		want bool
	}{
		{"plain", wasm.Module{CodeSection: plain}, true},
		{"imported table", wasm.Module{CodeSection: plain, ImportSection: []*wasm.Import{{Type: wasm.ExternTypeTable}}}, false},
		{"exported table", wasm.Module{CodeSection: plain, ExportSection: []*wasm.Export{{Type: wasm.ExternTypeTable}}}, false},
		{"a body that sets a table", wasm.Module{CodeSection: append(plain, &wasm.Code{Body: []byte{0x26, 0x00, 0x0b}})}, false},
	} {
		if got := resettable(&c.m); got != c.want {
			t.Errorf("%s: resettable = %v, want %v", c.name, got, c.want)
		}
	}
}
