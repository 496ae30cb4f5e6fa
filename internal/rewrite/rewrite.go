// Package rewrite derives the two modules thaw runs for every function from
// the module a user deploys, using github.com/tetratelabs/wabin.
//
// A thaw snapshot is an instance's linear memory plus the value of every
// global; nothing else in a Go wasip1 reactor holds state that outlives a
// call (its tables are fixed by element segments and never written). The two
// derived modules exist so that this state can be read out and put back:
//
//   - The boot module (Instrument) exports every global. wazero lets the host
//     read and write only exported globals, and Go's toolchain exports none:
//     its stack pointer and scheduler registers live in unexported mutable
//     globals, so without this rewrite they could not be captured.
//   - The restore module (ForRestore) instantiates without writing linear
//     memory or running guest code: active data segments would otherwise
//     overwrite the Go heap that the snapshot restored with the module's
//     initial image, and a start function would re-run initialisation.
//
// When the module allows it (Info.OneModule: Go's output does), the restore
// module boots the function too: the engine instantiates it and writes the
// data segments (Info.Data) itself, so a deploy compiles one module, not
// two.
//
// Both functions walk the binary with a bounds-checked reader before handing
// it to wabin (see check), so hostile uploads fail with errdefs.ErrInvalid
// instead of exhausting memory or panicking.
package rewrite

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/leb128"
	"github.com/tetratelabs/wabin/wasm"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// GlobalPrefix prefixes the export names Instrument gives to globals the
// module does not export itself: global 3 becomes "thaw.g3". The dot keeps
// the names out of the way of Go's //go:wasmexport names, which are Go
// identifiers by convention.
const GlobalPrefix = "thaw.g"

// maxPages is the largest memory a 32-bit wasm module can declare (4 GiB).
const maxPages = 65536

// features are the WebAssembly 2.0 core features; Go's wasip1 output uses
// sign extension, non-trapping conversions and bulk memory.
const features = wasm.CoreFeaturesV2

// Global is one global the module defines.
type Global struct {
	// Index is the global's index in the module's global index space.
	Index uint32
	// Export is the name under which the boot module exports it: the
	// module's own export name if it had one, else GlobalPrefix+Index.
	Export string
	// Type is the value type: 0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64.
	Type byte
	// Mutable globals must be captured and restored; immutable ones are
	// fixed by the module, but are exported too so that a snapshot can list
	// every global uniformly.
	Mutable bool
}

// Info describes the state of a module that a snapshot must capture.
type Info struct {
	// Globals lists every global the module defines, in index order.
	// Instrument rejects imported globals, so the list is the whole index
	// space.
	Globals []Global
	// MemoryMinPages is the declared minimum of the module's memory, in
	// 64 KiB pages.
	MemoryMinPages uint32
	// MemoryMaxPages is the declared maximum, nil when unbounded; a
	// snapshot larger than it cannot be restored.
	MemoryMaxPages *uint32
	// Exports lists the exported function names.
	Exports []string
	// Types gives the signature of each exported function, by name.
	Types map[string]FuncType
	// OneModule reports whether the restore module (ForRestore) can also
	// boot the function: the module has no start function and no data
	// count section (so no instruction names a data segment), and every
	// data segment is active at a constant offset. Booting it is then
	// instantiating the restore module and writing Data into its memory,
	// and an engine compiles one module for boots and restores instead of
	// two. Go's and the JavaScript runtime's output qualify.
	OneModule bool
	// Data are the module's active data segments, in order, when OneModule
	// is set; nil otherwise.
	Data []Segment
	// Resettable reports whether an instance's state is its memory and
	// its mutable globals alone: the module imports and exports no table,
	// and no instruction writes a table or drops a segment (every
	// instruction is decoded; one this package does not know counts as
	// such a write). Restoring the memory and the globals of a snapshot
	// into a used instance then makes it a new instance of that snapshot,
	// and an engine may reuse it instead of instantiating again. Go's and
	// the JavaScript runtime's output qualify.
	Resettable bool
}

// FuncType is a function's signature: its parameters' and results' value
// types, in the binary encoding (0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64).
type FuncType struct {
	Params, Results []byte
}

// Segment is an active data segment: bytes that instantiation writes into
// the memory at Offset.
type Segment struct {
	Offset uint32
	Bytes  []byte
}

// Instrument returns the boot module for wasm and what it holds. Malformed
// modules, and modules whose state thaw cannot capture (an imported memory
// or global, no memory, more than one memory), fail with
// errdefs.ErrInvalid. Instrument is idempotent: instrumenting a boot module
// yields the same exports and Info.
func Instrument(wasmBytes []byte) (out []byte, info *Info, err error) {
	m, err := decode(wasmBytes)
	if err != nil {
		return nil, nil, err
	}
	for _, imp := range m.ImportSection {
		switch imp.Type {
		case wasm.ExternTypeMemory:
			// Its contents would belong to the host, which thaw would then
			// have to snapshot and share as well.
			return nil, nil, fmt.Errorf("module imports its memory (%s.%s); thaw needs a module that defines it: %w", imp.Module, imp.Name, errdefs.ErrInvalid)
		case wasm.ExternTypeGlobal:
			// An imported global cannot be re-exported as a writable
			// handle of this instance, and its value is the host's.
			return nil, nil, fmt.Errorf("module imports global %s.%s, whose state thaw cannot capture: %w", imp.Module, imp.Name, errdefs.ErrInvalid)
		}
	}
	if m.MemorySection == nil {
		return nil, nil, fmt.Errorf("module defines no memory: %w", errdefs.ErrInvalid)
	}
	info = &Info{MemoryMinPages: m.MemorySection.Min}
	if m.MemorySection.IsMaxEncoded {
		max := m.MemorySection.Max
		info.MemoryMaxPages = &max
	}
	exported := map[uint32]string{}
	names := map[string]bool{}
	info.Types = map[string]FuncType{}
	for _, e := range m.ExportSection {
		names[e.Name] = true
		switch e.Type {
		case wasm.ExternTypeGlobal:
			if _, ok := exported[e.Index]; !ok {
				exported[e.Index] = e.Name
			}
		case wasm.ExternTypeFunc:
			info.Exports = append(info.Exports, e.Name)
			ft, err := funcType(m, e.Index)
			if err != nil {
				return nil, nil, fmt.Errorf("export %q: %w", e.Name, err)
			}
			info.Types[e.Name] = ft
		}
	}
	for i, g := range m.GlobalSection {
		idx := uint32(i) // no imported globals, so the index space starts here
		gl := Global{Index: idx, Type: g.Type.ValType, Mutable: g.Type.Mutable}
		if name, ok := exported[idx]; ok {
			gl.Export = name
		} else {
			gl.Export = GlobalPrefix + strconv.Itoa(i)
			if names[gl.Export] {
				return nil, nil, fmt.Errorf("module already exports another item as %q: %w", gl.Export, errdefs.ErrInvalid)
			}
			names[gl.Export] = true
			m.ExportSection = append(m.ExportSection, &wasm.Export{Type: wasm.ExternTypeGlobal, Name: gl.Export, Index: idx})
		}
		info.Globals = append(info.Globals, gl)
	}
	info.Data, info.OneModule = hostData(m)
	info.Resettable = resettable(m)
	out, err = encode(m)
	if err != nil {
		return nil, nil, err
	}
	return out, info, nil
}

// hostData returns m's active data segments and true if the host can write
// them in place of instantiation (see Info.OneModule), else nil and false.
func hostData(m *wasm.Module) ([]Segment, bool) {
	if m.StartSection != nil || m.DataCountSection != nil {
		return nil, false
	}
	segs := make([]Segment, 0, len(m.DataSection))
	for _, d := range m.DataSection {
		e := d.OffsetExpression
		if e == nil || e.Opcode != wasm.OpcodeI32Const {
			return nil, false
		}
		off, _, err := leb128.DecodeInt32(bytes.NewReader(e.Data))
		if err != nil {
			return nil, false
		}
		// The offset is an address: i32.const's bits, unsigned.
		segs = append(segs, Segment{Offset: uint32(off), Bytes: d.Init})
	}
	return segs, true
}

// ForRestore derives the restore module from a boot module (the output of
// Instrument) for a snapshot of memPages pages. Instantiating it writes
// nothing to linear memory and runs no guest code:
//
//   - Without a data count section no instruction can name a data segment
//     (memory.init and data.drop require one to validate), so the data
//     section is dropped whole. That is the case for Go's output, and it
//     also spares wazero from keeping the segments' bytes per instance.
//   - With one, each active segment becomes passive with its bytes kept,
//     so data indices stay valid and memory.init behaves as in the boot
//     instance. (The specification drops active segments once applied, but
//     wazero v1.12 keeps their bytes, and the restore module must match the
//     runtime thaw runs on, not the specification.) Which segments the
//     guest dropped with data.drop is not part of a snapshot: a restored
//     instance sees them whole again. Go never emits data.drop.
//   - The start section is removed so that nothing re-runs initialisation.
//
// The memory's minimum becomes memPages so instantiation allocates the
// whole image at once; memPages must lie between the module's minimum and
// maximum. Globals keep their exports.
func ForRestore(boot []byte, memPages uint32) ([]byte, error) {
	m, err := decode(boot)
	if err != nil {
		return nil, err
	}
	if m.MemorySection == nil {
		return nil, fmt.Errorf("module defines no memory: %w", errdefs.ErrInvalid)
	}
	for _, imp := range m.ImportSection {
		if imp.Type == wasm.ExternTypeMemory {
			return nil, fmt.Errorf("module imports a memory (%s.%s): %w", imp.Module, imp.Name, errdefs.ErrInvalid)
		}
	}
	switch {
	case memPages > maxPages:
		return nil, fmt.Errorf("snapshot has %d pages, more than wasm's 4 GiB: %w", memPages, errdefs.ErrInvalid)
	case m.MemorySection.IsMaxEncoded && memPages > m.MemorySection.Max:
		return nil, fmt.Errorf("snapshot has %d pages, module allows at most %d: %w", memPages, m.MemorySection.Max, errdefs.ErrInvalid)
	case memPages < m.MemorySection.Min:
		return nil, fmt.Errorf("snapshot has %d pages, fewer than the module's minimum %d: %w", memPages, m.MemorySection.Min, errdefs.ErrInvalid)
	}
	m.MemorySection.Min = memPages
	if m.DataCountSection == nil {
		m.DataSection = nil
	} else {
		for _, d := range m.DataSection {
			d.OffsetExpression = nil
		}
	}
	m.StartSection = nil
	return encode(m)
}

// decode checks and parses a module, turning wabin's errors (and any panic
// on hostile input) into errdefs.ErrInvalid.
// funcType returns the signature of function idx of m (imported functions
// first, then the module's own).
func funcType(m *wasm.Module, idx uint32) (FuncType, error) {
	typeIdx, ok := uint32(0), false
	for _, imp := range m.ImportSection {
		if imp.Type != wasm.ExternTypeFunc {
			continue
		}
		if idx == 0 {
			typeIdx, ok = imp.DescFunc, true
			break
		}
		idx--
	}
	if !ok && idx < uint32(len(m.FunctionSection)) {
		typeIdx, ok = m.FunctionSection[idx], true
	}
	if !ok || typeIdx >= uint32(len(m.TypeSection)) {
		return FuncType{}, fmt.Errorf("malformed wasm module: function index or type out of range: %w", errdefs.ErrInvalid)
	}
	t := m.TypeSection[typeIdx]
	return FuncType{Params: append([]byte(nil), t.Params...), Results: append([]byte(nil), t.Results...)}, nil
}

func decode(b []byte) (m *wasm.Module, err error) {
	if err := check(b); err != nil {
		return nil, fmt.Errorf("malformed wasm module: %v: %w", err, errdefs.ErrInvalid)
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("malformed wasm module: %v: %w", r, errdefs.ErrInvalid)
		}
	}()
	m, err = binary.DecodeModule(b, features)
	if err != nil {
		return nil, fmt.Errorf("malformed wasm module: %v: %w", err, errdefs.ErrInvalid)
	}
	return m, nil
}

// encode serialises m. wabin's encoder omits the data count section, which
// a module using memory.init or data.drop cannot validate without, so
// encode splices it back in before the code section, where the
// specification places it.
func encode(m *wasm.Module) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("encode wasm module: %v: %w", r, errdefs.ErrInvalid)
		}
	}()
	out = binary.EncodeModule(m)
	if m.DataCountSection == nil {
		return out, nil
	}
	count := leb128.EncodeUint32(*m.DataCountSection)
	sec := append([]byte{wasm.SectionIDDataCount}, leb128.EncodeUint32(uint32(len(count)))...)
	sec = append(sec, count...)
	at := len(out)
	r := &reader{b: out, off: 8}
	for r.off < len(r.b) {
		start := r.off
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("re-read encoded module: %w", err)
		}
		if id == wasm.SectionIDCode || id == wasm.SectionIDData || id == wasm.SectionIDCustom {
			at = start
			break
		}
		if _, err := r.bytes(size); err != nil {
			return nil, fmt.Errorf("re-read encoded module: %w", err)
		}
	}
	return bytes.Join([][]byte{out[:at], sec, out[at:]}, nil), nil
}
