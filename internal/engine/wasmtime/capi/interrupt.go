//go:build cgo

package capi

/*
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

// The part of libwasmtime's C API (wasmtime/store.h, wasmtime/error.h)
// that this file calls; see capi.go for why it is declared here.
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef uint8_t wasmtime_update_deadline_kind_t;
#define WASMTIME_UPDATE_DEADLINE_CONTINUE 0

extern wasmtime_error_t *wasmtime_error_new(const char *);
extern void wasmtime_store_epoch_deadline_callback(wasmtime_store_t *store,
	wasmtime_error_t *(*func)(wasmtime_context_t *context, void *data,
		uint64_t *epoch_deadline_delta, wasmtime_update_deadline_kind_t *update_kind),
	void *data, void (*finalizer)(void *));

// thaw_intr is one store's interruption state. call numbers the calls
// (Arm) and left is the number of epoch ticks the running one may still
// take; only the guest's thread touches them while a call runs. cancelled
// is the number of the call last cancelled, set by any thread: a cancel
// that arrives late for an earlier call cannot stop a later one. tripped
// records that the callback stopped the guest.
typedef struct {
	uint64_t call;
	uint64_t left;
	atomic_uint_fast64_t cancelled;
	atomic_int tripped;
} thaw_intr;

// thaw_epoch runs on the guest's thread at every epoch tick of a call (the
// store's deadline is always one tick ahead): it stops the guest once the
// call is cancelled or has used its ticks, and otherwise lets it run one
// more tick.
static wasmtime_error_t *thaw_epoch(wasmtime_context_t *ctx, void *data,
		uint64_t *delta, wasmtime_update_deadline_kind_t *kind) {
	thaw_intr *in = data;
	if (atomic_load(&in->cancelled) == in->call || in->left == 0) {
		atomic_store(&in->tripped, 1);
		return wasmtime_error_new("thaw: guest interrupted (deadline or cancellation)");
	}
	in->left--;
	*delta = 1;
	*kind = WASMTIME_UPDATE_DEADLINE_CONTINUE;
	return NULL;
}

static thaw_intr *thaw_intr_new(wasmtime_store_t *store) {
	thaw_intr *in = calloc(1, sizeof(thaw_intr));
	if (in != NULL) {
		wasmtime_store_epoch_deadline_callback(store, thaw_epoch, in, NULL);
	}
	return in;
}

static uint64_t thaw_intr_arm(thaw_intr *in, uint64_t ticks) {
	in->call++;
	in->left = ticks;
	atomic_store(&in->tripped, 0);
	return in->call;
}

static void thaw_intr_cancel(thaw_intr *in, uint64_t call) { atomic_store(&in->cancelled, call); }

static int thaw_intr_tripped(thaw_intr *in) { return atomic_load(&in->tripped); }
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Interrupt stops a store's running guest at its deadline or as soon as its
// call is cancelled, from any goroutine.
//
// wasmtime-go offers only Store.SetEpochDeadline: a guest traps when the
// engine's epoch passes a deadline fixed before the call. Nothing can move
// that deadline while the guest runs (a store is not safe to touch from
// another thread), so a call whose context is cancelled early would run
// on to its deadline. The C API's epoch deadline callback
// (wasmtime_store_epoch_deadline_callback, not in wasmtime-go) runs on the
// guest's thread when the deadline passes; Interrupt installs one, in C so
// that no tick calls into Go, which keeps the deadline one tick ahead and
// at every tick checks a flag that Cancel sets atomically, and the call's
// remaining ticks.
//
// An Interrupt is freed with Free, after its store is closed.
type Interrupt struct {
	mu sync.Mutex // guards in against Cancel racing Free
	in *C.thaw_intr
}

// NewInterrupt installs the epoch deadline callback on store. The engine
// must have epoch interruption enabled. The store must outlive no Free of
// the returned Interrupt: close the store first.
func NewInterrupt(store *wasmtime.Store) *Interrupt {
	// wasmtime-go keeps the C pointer as Store's first field and offers no
	// accessor (as Config, in Configure).
	ptr := *(**C.wasmtime_store_t)(unsafe.Pointer(store))
	if ptr == nil {
		panic("capi: wasmtime.Store already closed")
	}
	in := C.thaw_intr_new(ptr)
	runtime.KeepAlive(store)
	if in == nil {
		panic("capi: out of memory")
	}
	return &Interrupt{in: in}
}

// Arm prepares the next call and returns its number: it may run for ticks
// epoch ticks (the caller sets the store's epoch deadline to one tick
// ahead) until Cancel is called with that number. Call it only while no
// guest code of the store runs.
func (i *Interrupt) Arm(ticks uint64) uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.in == nil {
		return 0
	}
	return uint64(C.thaw_intr_arm(i.in, C.uint64_t(ticks)))
}

// Cancel makes the call numbered call (Arm), if it is running, stop at
// the next epoch tick. It is safe from any goroutine, and a no-op once
// Free ran.
func (i *Interrupt) Cancel(call uint64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.in != nil {
		C.thaw_intr_cancel(i.in, C.uint64_t(call))
	}
}

// Tripped reports whether the callback stopped the last call.
func (i *Interrupt) Tripped() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.in != nil && C.thaw_intr_tripped(i.in) != 0
}

// Free releases the interrupt state. The store must be closed already (its
// callback refers to the state).
func (i *Interrupt) Free() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.in != nil {
		C.free(unsafe.Pointer(i.in))
		i.in = nil
	}
}
