package rewrite

import (
	"github.com/tetratelabs/wabin/wasm"
)

// resettable reports whether restoring an instance's memory and mutable
// globals is all it takes to make it a new instance of the snapshot (see
// Info.Resettable): m imports no table, exports none, and no function body
// holds an instruction that changes an instance's other state: a table
// (table.set, table.grow, table.fill, table.copy, table.init) or a segment
// (elem.drop, data.drop). It decodes every instruction and answers false on
// any it does not know (exceptions, SIMD, threads, garbage collection): no
// decoder here knows their immediates, and they may write state too.
func resettable(m *wasm.Module) bool {
	for _, imp := range m.ImportSection {
		if imp.Type == wasm.ExternTypeTable {
			return false
		}
	}
	for _, e := range m.ExportSection {
		if e.Type == wasm.ExternTypeTable {
			return false // the host could write it
		}
	}
	for _, c := range m.CodeSection {
		if !fixedBody(c.Body) {
			return false
		}
	}
	return true
}

// fixedBody reports whether a function body (its instructions, locals
// already taken off) decodes to the end with only instructions that leave
// tables and segments alone.
func fixedBody(body []byte) bool {
	r := &reader{b: body}
	for r.off < len(r.b) {
		op, _ := r.byte()
		var err error
		switch {
		case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b,
			op >= 0x45 && op <= 0xc4, op == 0xd1:
			// No immediates: unreachable, nop, else, end, return, drop,
			// select, the numeric instructions (with sign extension), and
			// ref.is_null.
		case op >= 0x02 && op <= 0x04: // block, loop, if: a block type (s33)
			err = r.skipLEB(5)
		case op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, op == 0x14, op == 0x15,
			op >= 0x20 && op <= 0x25, op == 0x3f, op == 0x40, op == 0xd2:
			// One index: br, br_if, call, return_call, call_ref,
			// return_call_ref, local and global access, table.get,
			// memory.size, memory.grow, ref.func.
			_, err = r.u32()
		case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
			if _, err = r.u32(); err == nil {
				_, err = r.u32()
			}
		case op == 0x0e: // br_table: a vector of labels and a default
			err = r.vec(func() error { _, err := r.u32(); return err })
			if err == nil {
				_, err = r.u32()
			}
		case op == 0x1c: // select with types
			err = r.skipVec()
		case op >= 0x28 && op <= 0x3e: // loads and stores: a memarg
			err = r.memarg()
		case op == 0x41: // i32.const
			err = r.skipLEB(5)
		case op == 0x42: // i64.const
			err = r.skipLEB(10)
		case op == 0x43: // f32.const
			_, err = r.bytes(4)
		case op == 0x44: // f64.const
			_, err = r.bytes(8)
		case op == 0xd0: // ref.null: a heap type (s33)
			err = r.skipLEB(5)
		case op == 0xfc:
			var sub uint32
			if sub, err = r.u32(); err != nil {
				return false
			}
			switch {
			case sub <= 7: // saturating truncations
			case sub == 8, sub == 10: // memory.init, memory.copy
				if _, err = r.u32(); err == nil {
					_, err = r.u32()
				}
			case sub == 11, sub == 16: // memory.fill, table.size
				_, err = r.u32()
			default: // data.drop, table.init, elem.drop, table.copy, table.grow, table.fill, unknown
				return false
			}
		default: // table.set (0x26), exceptions, prefixes 0xfb, 0xfd, 0xfe, unknown
			return false
		}
		if err != nil {
			return false
		}
	}
	return true
}

// memarg skips a load's or store's alignment (whose bit 6 announces a
// memory index) and offset.
func (r *reader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return r.skipLEB(10)
}
