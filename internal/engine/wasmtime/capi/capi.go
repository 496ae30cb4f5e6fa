//go:build cgo

package capi

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

// The part of libwasmtime's C API (wasmtime/config.h, wasmtime/error.h)
// that this package calls. wasmtime-go links the library but its headers
// are not on this package's include path, so the declarations are here.
typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_memorytype_t wasm_memorytype_t;
typedef struct wasmtime_error wasmtime_error_t;

extern wasmtime_error_t *wasmtime_error_new(const char *);

typedef struct {
	void *env;
	uint8_t *(*get_memory)(void *env, size_t *byte_size, size_t *byte_capacity);
	wasmtime_error_t *(*grow_memory)(void *env, size_t new_size);
	void (*finalizer)(void *);
} wasmtime_linear_memory_t;

typedef struct {
	void *env;
	wasmtime_error_t *(*new_memory)(void *env, const wasm_memorytype_t *ty,
		size_t minimum, size_t maximum, size_t reserved_size_in_bytes,
		size_t guard_size_in_bytes, wasmtime_linear_memory_t *memory_ret);
	void (*finalizer)(void *);
} wasmtime_memory_creator_t;

extern void wasmtime_config_host_memory_creator_set(wasm_config_t *, wasmtime_memory_creator_t *);
extern void wasmtime_config_memory_reservation_set(wasm_config_t *, uint64_t);
extern void wasmtime_config_memory_guard_size_set(wasm_config_t *, uint64_t);
extern void wasmtime_config_memory_reservation_for_growth_set(wasm_config_t *, uint64_t);
extern void wasmtime_config_memory_may_move_set(wasm_config_t *, bool);

// Implemented in Go (export.go).
extern bool thawRegionGrow(uintptr_t handle, size_t size);
extern void thawRegionRelease(uintptr_t handle);

// thaw_mem is one linear memory: a reservation of capacity bytes at base,
// followed by guard bytes of inaccessible guard, of which the first size
// are the wasm memory. handle names the Go function that records a grow in
// the region (and refuses one past the instance's cap).
typedef struct {
	uint8_t *base;
	size_t size;
	size_t capacity;
	size_t guard;
	uintptr_t handle;
} thaw_mem;

// thaw_pending is the memory the next instantiation on this thread gets.
static __thread thaw_mem *thaw_pending;

static void thaw_set_pending(thaw_mem *m) { thaw_pending = m; }

// thaw_take_pending clears the pending memory and returns it if no memory
// creation consumed it.
static thaw_mem *thaw_take_pending(void) {
	thaw_mem *m = thaw_pending;
	thaw_pending = NULL;
	return m;
}

static uint8_t *thaw_get(void *env, size_t *size, size_t *capacity) {
	thaw_mem *m = env;
	*size = m->size;
	*capacity = m->capacity;
	return m->base;
}

static wasmtime_error_t *thaw_grow(void *env, size_t size) {
	thaw_mem *m = env;
	// The Go side decides, so that the region records a refusal.
	if (!thawRegionGrow(m->handle, size)) {
		return wasmtime_error_new("thaw: linear memory would exceed the instance's memory cap");
	}
	m->size = size;
	return NULL;
}

static void thaw_free(void *env) {
	thaw_mem *m = env;
	thawRegionRelease(m->handle);
	free(m);
}

static wasmtime_error_t *thaw_new_memory(void *env, const wasm_memorytype_t *ty,
		size_t minimum, size_t maximum, size_t reserved, size_t guard,
		wasmtime_linear_memory_t *ret) {
	thaw_mem *m = thaw_pending;
	if (m == NULL) {
		return wasmtime_error_new("thaw: no region for this linear memory (one memory per instance)");
	}
	// Memories are static (Configure): compiled code relies on reserved
	// bytes from base plus guard bytes being either memory or faulting.
	// A region that reserves less could not honour that.
	if (reserved > m->capacity || guard > m->guard) {
		return wasmtime_error_new("thaw: wasmtime asked for a memory reservation or guard larger than the region's");
	}
	if (!thawRegionGrow(m->handle, minimum)) {
		return wasmtime_error_new("thaw: the module's minimum memory exceeds the instance's memory cap");
	}
	thaw_pending = NULL;
	m->size = minimum;
	ret->env = m;
	ret->get_memory = thaw_get;
	ret->grow_memory = thaw_grow;
	ret->finalizer = thaw_free;
	return NULL;
}

static void thaw_configure(wasm_config_t *cfg, uint64_t reservation, uint64_t guard) {
	wasmtime_memory_creator_t c = {0};
	c.new_memory = thaw_new_memory;
	wasmtime_config_host_memory_creator_set(cfg, &c);
	wasmtime_config_memory_reservation_set(cfg, reservation);
	wasmtime_config_memory_guard_size_set(cfg, guard);
	wasmtime_config_memory_reservation_for_growth_set(cfg, 0);
	wasmtime_config_memory_may_move_set(cfg, false);
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"runtime/cgo"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Configure makes every linear memory of engines built from cfg come from
// WithMemory, as a static memory of reservation bytes followed by guard
// bytes of guard:
//
//   - A host memory creator (wasmtime_config_host_memory_creator_set, not
//     in wasmtime-go) hands wasmtime the region of the instance being
//     created; a grow makes more of the region accessible within its cap
//     and a grow past the cap fails, the region recording the refusal.
//   - Memories are static: memory_reservation is reservation,
//     memory_guard_size guard, no reservation for growth, and memories
//     never move (memory_may_move false). With reservation + guard at
//     least 4 GiB, Cranelift elides the bounds check of every access of a
//     32-bit memory whose constant offset is below guard: it relies on the
//     region's pages past the memory's length being PROT_NONE, so that an
//     out-of-bounds access faults and wasmtime's signal handler turns the
//     fault into a trap (engine.Region keeps that layout). wasmtime
//     attributes such a fault to a memory if its address lies within the
//     memory's reported capacity plus the guard, which is why WithMemory
//     reports the whole reservation as the capacity.
//   - Copy-on-write memory initialisation is turned off: wasmtime cannot
//     map a module's data segments into a memory it did not create
//     (wasmtime issue #10740); a boot copies them, a restore has none.
//
// Configure reads the C pointer out of cfg: wasmtime-go keeps it as the
// only field of Config and offers no accessor. TestWithMemory checks that
// the creator is in effect.
func Configure(cfg *wasmtime.Config, reservation, guard uint64) {
	cfg.SetMemoryInitCOWSet(false)
	ptr := *(**C.wasm_config_t)(unsafe.Pointer(cfg))
	if ptr == nil {
		panic("capi: wasmtime.Config already consumed")
	}
	C.thaw_configure(ptr, C.uint64_t(reservation), C.uint64_t(guard))
	runtime.KeepAlive(cfg)
}

// WithMemory runs instantiate, which must create exactly one wasmtime
// instance on the calling goroutine, so that the linear memory it defines
// starts at resv's address. resv is the memory's reservation: its length
// is the capacity reported to wasmtime (at least Configure's reservation),
// and guard more bytes past it must be reserved and inaccessible (at least
// Configure's guard). Pages of the reservation past the memory's length
// must be inaccessible too: grow makes them accessible. grow records a new
// length (for the initial size too) and reports whether the region allows
// it; it must not call into wasmtime. release runs when wasmtime drops the
// memory (with its store).
//
// The memory creator is engine-wide and has no argument that names the
// instance, so the region is handed over in a thread-local variable: the
// goroutine is locked to its thread for the instantiation.
func WithMemory(resv []byte, guard uint64, grow func(size uint64) bool, release func(), instantiate func() error) error {
	if len(resv) == 0 {
		return fmt.Errorf("capi: empty region")
	}
	h := cgo.NewHandle(&memory{grow: grow, release: release})
	m := (*C.thaw_mem)(C.malloc(C.sizeof_thaw_mem))
	*m = C.thaw_mem{base: (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(resv))), size: 0,
		capacity: C.size_t(len(resv)), guard: C.size_t(guard), handle: C.uintptr_t(h)}
	runtime.LockOSThread()
	C.thaw_set_pending(m)
	err := instantiate()
	left := C.thaw_take_pending()
	runtime.UnlockOSThread()
	if left != nil {
		// No memory was created (instantiation failed before, or the
		// module defines none): wasmtime never owned m.
		h.Delete()
		C.free(unsafe.Pointer(left))
		if err == nil {
			err = fmt.Errorf("capi: the module defines no linear memory")
		}
	}
	return err
}

// memory is the Go side of one linear memory.
type memory struct {
	grow    func(uint64) bool
	release func()
}
