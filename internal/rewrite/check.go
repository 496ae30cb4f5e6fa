package rewrite

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// maxLocals bounds the locals one function may declare. wabin expands the
// run-length local declarations into one byte per local, so without a bound
// a 20-byte body could make it allocate 4 GiB. Go's compiler emits a few
// dozen per function; wazero's own limit is far lower than this.
const maxLocals = 1 << 20

// errShort reports input that ends inside a structure.
var errShort = errors.New("unexpected end of input")

// check walks the module's structure before wabin decodes it. wabin trusts
// every length and count it reads and allocates for it up front (make of a
// claimed 4 GiB vector, a 4-billion-entry name map): a tiny hostile upload
// could exhaust the host's memory, which kills the process rather than
// returning an error. check bounds every count by the bytes that remain, so
// what wabin then allocates is proportional to the input.
//
// It also enforces what wabin leaves out and thaw relies on: known section
// ids in the order the specification fixes, no section twice (wabin would
// keep the last memory section, hiding a second memory), and at most one
// memory in total, imported or defined. It does not validate code bodies;
// wazero does that when it compiles the module.
func check(b []byte) error {
	r := &reader{b: b}
	magic, err := r.bytes(8)
	if err != nil || string(magic) != "\x00asm\x01\x00\x00\x00" {
		return errors.New("not a wasm 1.0 binary (bad magic or version)")
	}
	last := 0
	memories := uint32(0)
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return fmt.Errorf("section %d size: %w", id, err)
		}
		body, err := r.bytes(size)
		if err != nil {
			return fmt.Errorf("section %d: size %d: %w", id, size, err)
		}
		if id != 0 {
			rank := sectionRank(id)
			if rank == 0 {
				return fmt.Errorf("unknown section id %d", id)
			}
			if rank <= last {
				return fmt.Errorf("section %d out of order or repeated", id)
			}
			last = rank
		}
		s := &reader{b: body}
		if err := checkSection(id, s, &memories); err != nil {
			return fmt.Errorf("section %d: %w", id, err)
		}
		if s.off != len(s.b) {
			return fmt.Errorf("section %d: %d trailing bytes", id, len(s.b)-s.off)
		}
	}
	if memories > 1 {
		return fmt.Errorf("module has %d memories; thaw snapshots exactly one", memories)
	}
	return nil
}

// sectionRank orders section ids as the specification requires (the data
// count section, id 12, sits between elements and code); 0 means unknown.
func sectionRank(id byte) int {
	switch {
	case id >= 1 && id <= 9:
		return int(id)
	case id == 12:
		return 10
	case id == 10 || id == 11:
		return int(id) + 1
	}
	return 0
}

func checkSection(id byte, r *reader, memories *uint32) error {
	switch id {
	case 0:
		return checkCustom(r)
	case 1: // types
		return r.vec(func() error {
			if f, err := r.byte(); err != nil || f != 0x60 {
				return errors.New("function type must start with 0x60")
			}
			if err := r.skipVec(); err != nil {
				return err
			}
			return r.skipVec()
		})
	case 2: // imports
		return r.vec(func() error {
			if err := r.name(); err != nil {
				return err
			}
			if err := r.name(); err != nil {
				return err
			}
			kind, err := r.byte()
			if err != nil {
				return err
			}
			switch kind {
			case 0:
				_, err = r.u32()
			case 1:
				if _, err = r.byte(); err == nil {
					err = r.limits()
				}
			case 2:
				*memories++
				err = r.limits()
			case 3:
				_, err = r.bytes(2)
			default:
				err = fmt.Errorf("unknown import kind %d", kind)
			}
			return err
		})
	case 3, 8, 12: // function type indices, start index, data count
		if id == 3 {
			return r.vec(func() error { _, err := r.u32(); return err })
		}
		_, err := r.u32()
		return err
	case 4: // tables
		return r.vec(func() error {
			if _, err := r.byte(); err != nil {
				return err
			}
			return r.limits()
		})
	case 5: // memories
		return r.vec(func() error {
			*memories++
			return r.limits()
		})
	case 6: // globals
		return r.vec(func() error {
			if _, err := r.bytes(2); err != nil {
				return err
			}
			return r.constExpr()
		})
	case 7: // exports
		return r.vec(func() error {
			if err := r.name(); err != nil {
				return err
			}
			_, err := r.bytes(1)
			if err == nil {
				_, err = r.u32()
			}
			return err
		})
	case 9:
		return r.vec(func() error { return checkElement(r) })
	case 10: // code
		return r.vec(func() error {
			size, err := r.u32()
			if err != nil {
				return err
			}
			body, err := r.bytes(size)
			if err != nil {
				return err
			}
			c := &reader{b: body}
			var total uint64
			if err := c.vec(func() error {
				n, err := c.u32()
				if err != nil {
					return err
				}
				total += uint64(n)
				_, err = c.byte()
				return err
			}); err != nil {
				return err
			}
			if total > maxLocals {
				return fmt.Errorf("function declares %d locals, more than %d", total, maxLocals)
			}
			return nil
		})
	case 11: // data
		return r.vec(func() error {
			flag, err := r.u32()
			if err != nil {
				return err
			}
			switch flag {
			case 2:
				if _, err := r.u32(); err != nil {
					return err
				}
				fallthrough
			case 0:
				if err := r.constExpr(); err != nil {
					return err
				}
			case 1:
			default:
				return fmt.Errorf("unknown data segment flag %d", flag)
			}
			return r.skipVec()
		})
	}
	return fmt.Errorf("unknown section id %d", id)
}

// checkElement walks one element segment in any of its eight encodings.
func checkElement(r *reader) error {
	flag, err := r.u32()
	if err != nil {
		return err
	}
	if flag > 7 {
		return fmt.Errorf("unknown element segment flag %d", flag)
	}
	if flag&2 != 0 && flag&1 == 0 { // explicit table index
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	if flag&1 == 0 { // active: offset expression
		if err := r.constExpr(); err != nil {
			return err
		}
	}
	if flag&3 != 0 { // element kind or reference type
		if _, err := r.byte(); err != nil {
			return err
		}
	}
	if flag&4 != 0 {
		return r.vec(r.constExpr)
	}
	return r.vec(func() error { _, err := r.u32(); return err })
}

// checkCustom bounds the name section's maps, the only custom section wabin
// interprets; other custom sections are opaque bytes.
func checkCustom(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	name, err := r.bytes(n)
	if err != nil {
		return err
	}
	if !utf8.Valid(name) {
		return errors.New("custom section name is not UTF-8")
	}
	if string(name) != "name" {
		r.off = len(r.b)
		return nil
	}
	for r.off < len(r.b) {
		sub, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		body, err := r.bytes(size)
		if err != nil {
			return err
		}
		s := &reader{b: body}
		nameMap := func() error {
			return s.vec(func() error {
				if _, err := s.u32(); err != nil {
					return err
				}
				return s.name()
			})
		}
		switch sub {
		case 1:
			err = nameMap()
		case 2:
			err = s.vec(func() error {
				if _, err := s.u32(); err != nil {
					return err
				}
				return nameMap()
			})
		}
		if err != nil {
			return fmt.Errorf("name subsection %d: %w", sub, err)
		}
	}
	return nil
}

// reader is a bounds-checked cursor over a byte slice.
type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	r.off++
	return r.b[r.off-1], nil
}

func (r *reader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.b)-r.off) {
		return nil, errShort
	}
	r.off += int(n)
	return r.b[r.off-int(n) : r.off], nil
}

// u32 reads an unsigned LEB128 value of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 28 && c > 0x0f {
			return 0, errors.New("LEB128 value overflows 32 bits")
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 value overflows 32 bits")
}

// skipLEB skips a LEB128 value of at most maxBytes bytes.
func (r *reader) skipLEB(maxBytes int) error {
	for range maxBytes {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("LEB128 value too long")
}

// count reads a vector length, which cannot exceed the bytes left since
// every element takes at least one byte.
func (r *reader) count() (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		return 0, fmt.Errorf("count %d exceeds the %d bytes left", n, len(r.b)-r.off)
	}
	return n, nil
}

func (r *reader) vec(elem func() error) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for range n {
		if err := elem(); err != nil {
			return err
		}
	}
	return nil
}

// skipVec skips a vector of bytes (value types, data, a name).
func (r *reader) skipVec() error {
	n, err := r.count()
	if err == nil {
		_, err = r.bytes(n)
	}
	return err
}

func (r *reader) name() error {
	n, err := r.count()
	if err != nil {
		return err
	}
	b, _ := r.bytes(n)
	if !utf8.Valid(b) {
		return errors.New("name is not UTF-8")
	}
	return nil
}

func (r *reader) limits() error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	if flag > 1 {
		return fmt.Errorf("unsupported limits flag %#x (shared or 64-bit memory)", flag)
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flag == 1 {
		_, err = r.u32()
	}
	return err
}

// constExpr skips a constant expression up to its end opcode.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41, 0x23, 0xd2: // i32.const, global.get, ref.func
			err = r.skipLEB(5)
		case 0x42: // i64.const
			err = r.skipLEB(10)
		case 0x43:
			_, err = r.bytes(4)
		case 0x44:
			_, err = r.bytes(8)
		case 0xd0: // ref.null
			_, err = r.byte()
		case 0xfd: // v128.const
			var sub uint32
			if sub, err = r.u32(); err == nil && sub != 12 {
				err = fmt.Errorf("unsupported vector opcode %d in constant expression", sub)
			}
			if err == nil {
				_, err = r.bytes(16)
			}
		default:
			return fmt.Errorf("unsupported opcode %#x in constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}
