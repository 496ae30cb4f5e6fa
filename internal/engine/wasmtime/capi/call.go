//go:build cgo

package capi

/*
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The part of libwasmtime's C API (wasmtime/store.h, wasmtime/func.h,
// wasmtime/error.h, wasm.h) that this file calls; see capi.go for why it
// is declared here.
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef uint8_t wasmtime_update_deadline_kind_t;
#define WASMTIME_UPDATE_DEADLINE_CONTINUE 0

extern wasmtime_error_t *wasmtime_error_new(const char *);
extern wasmtime_context_t *wasmtime_store_context(wasmtime_store_t *);
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

static void thaw_intr_arm(thaw_intr *in, uint64_t call, uint64_t ticks) {
	in->call = call;
	in->left = ticks;
	atomic_store(&in->tripped, 0);
}

static void thaw_intr_cancel(thaw_intr *in, uint64_t call) { atomic_store(&in->cancelled, call); }

static int thaw_intr_tripped(thaw_intr *in) { return atomic_load(&in->tripped); }

typedef struct wasm_trap_t wasm_trap_t;
typedef struct {
	uint64_t store_id;
	void *__private;
} thaw_func_t; // wasmtime_func_t
typedef union {
	int32_t i32;
	int64_t i64;
	uint8_t v128[16];
} thaw_val_raw_t; // wasmtime_val_raw_t: 16 bytes, little-endian fields
typedef struct {
	size_t size;
	char *data;
} thaw_byte_vec_t; // wasm_byte_vec_t, wasm_name_t, wasm_message_t

extern wasmtime_error_t *wasmtime_func_call_unchecked(wasmtime_context_t *,
	const thaw_func_t *, thaw_val_raw_t *, size_t, wasm_trap_t **);
extern void wasmtime_context_set_epoch_deadline(wasmtime_context_t *, uint64_t);
extern void wasmtime_error_message(const wasmtime_error_t *, thaw_byte_vec_t *);
extern bool wasmtime_error_exit_status(const wasmtime_error_t *, int *);
extern void wasmtime_error_delete(wasmtime_error_t *);
extern void wasm_trap_message(const wasm_trap_t *, thaw_byte_vec_t *);
extern void wasm_trap_delete(wasm_trap_t *);
extern void wasm_byte_vec_delete(thaw_byte_vec_t *);

// thaw_result is a call's outcome, returned by value so that no Go memory
// crosses into C: failed is set on a trap or an error, whose text is msg
// (malloc'd, msg_len bytes, for the caller to free) and whose exit status,
// when the guest called proc_exit, is exit (has_exit set).
typedef struct {
	int64_t result;
	char *msg;
	size_t msg_len;
	int exit;
	bool failed;
	bool has_exit;
} thaw_result;

static void thaw_take_message(thaw_result *r, thaw_byte_vec_t *v, size_t trim) {
	size_t n = v->size > trim ? v->size - trim : 0;
	r->msg = malloc(n + 1);
	if (r->msg != NULL) {
		memcpy(r->msg, v->data, n);
		r->msg_len = n;
	}
	wasm_byte_vec_delete(v);
}

// thaw_call arms intr for call number call and ticks epoch ticks, puts the
// store's epoch deadline one tick ahead, and calls fn with nargs (at most
// two) raw arguments, in one crossing into C.
static thaw_result thaw_call(wasmtime_context_t *ctx, thaw_intr *in, uint64_t call, uint64_t ticks,
		thaw_func_t fn, int32_t a0, int32_t a1) {
	thaw_result r = {0};
	thaw_intr_arm(in, call, ticks);
	wasmtime_context_set_epoch_deadline(ctx, 1);
	thaw_val_raw_t raw[2];
	memset(raw, 0, sizeof raw);
	raw[0].i32 = a0;
	raw[1].i32 = a1;
	wasm_trap_t *trap = NULL;
	wasmtime_error_t *err = wasmtime_func_call_unchecked(ctx, &fn, raw, 2, &trap);
	thaw_byte_vec_t v = {0};
	if (trap != NULL) {
		r.failed = true;
		wasm_trap_message(trap, &v);
		thaw_take_message(&r, &v, 1); // the message ends in a NUL
		wasm_trap_delete(trap);
	} else if (err != NULL) {
		r.failed = true;
		r.has_exit = wasmtime_error_exit_status(err, &r.exit);
		wasmtime_error_message(err, &v);
		thaw_take_message(&r, &v, 0);
		wasmtime_error_delete(err);
	} else {
		r.result = raw[0].i64;
	}
	return r;
}
*/
import "C"

import (
	"errors"
	"fmt"
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
	mu    sync.Mutex // guards in against Cancel racing Free
	in    *C.thaw_intr
	ctx   *C.wasmtime_context_t
	store *wasmtime.Store
	calls uint64 // calls numbered so far (Next): touched by the store's goroutine only
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
	ctx := C.wasmtime_store_context(ptr)
	runtime.KeepAlive(store)
	if in == nil {
		panic("capi: out of memory")
	}
	return &Interrupt{in: in, ctx: ctx, store: store}
}

// Arm prepares a call that wasmtime-go makes (Call arms its own) and
// returns its number: it may run for ticks epoch ticks (the caller sets the
// store's epoch deadline to one tick ahead) until Cancel is called with
// that number. Call it only while no guest code of the store runs.
func (i *Interrupt) Arm(ticks uint64) uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.in == nil {
		return 0
	}
	call := i.Next()
	C.thaw_intr_arm(i.in, C.uint64_t(call), C.uint64_t(ticks))
	return call
}

// Next numbers the next call: the number Call runs it as and Cancel takes
// to stop it. Only the store's goroutine calls it.
func (i *Interrupt) Next() uint64 {
	i.calls++
	return i.calls
}

// Cancel makes the call numbered call (Arm, Next), if it is running, stop at
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

// Func is an instance's exported function, called through the C API's
// unchecked call (Interrupt.Call).
//
// wasmtime-go's Func.Call looks up the function's type, allocates its
// arguments and results, and sets finalizers, at every call: on a freshly
// restored instance, whose first calls find the host's caches cold, that
// was most of the ~15 µs its restore hook took, against 3 µs for a call
// without it (docs/restore.md). The thaw ABI's exports have fixed
// signatures, which thaw checks once per module (engine.Prepare), so the
// type checks of every call add nothing.
type Func struct {
	f     C.thaw_func_t
	nargs int
}

// NewFunc returns f, an export whose parameters are nargs i32 values (at
// most two) and whose result, if any, is one i32 or i64: the caller has
// checked the signature, which Call trusts.
func NewFunc(f *wasmtime.Func, nargs int) Func {
	if nargs > 2 {
		panic("capi: more than two arguments")
	}
	// wasmtime-go keeps the C value as Func's only field and offers no
	// accessor (as Config, in Configure). TestCall checks the layout.
	return Func{f: *(*C.thaw_func_t)(unsafe.Pointer(f)), nargs: nargs}
}

// ExitError is a guest's call of WASI proc_exit.
type ExitError struct{ Status int }

func (e *ExitError) Error() string { return fmt.Sprintf("guest exited with status %d", e.Status) }

// Call runs fn in the interrupt's store as call number call (Next), for
// ticks epoch ticks at most (the store's epoch deadline is put one tick
// ahead, in the same crossing into C), and returns its result's raw bits
// (0 without one). A trap or an error returns its text as the error, or
// an *ExitError if the guest exited. The store must be open.
//
// wasmtime-go's host functions stash a Go panic in the store and re-raise
// it when the call returns through wasmtime-go; through Call the panic is
// the call's error instead ("go panicked"), and the instance, failed, is
// discarded. thaw's host functions do not panic.
func (i *Interrupt) Call(fn Func, call, ticks uint64, args ...int32) (int64, error) {
	if len(args) != fn.nargs {
		return 0, fmt.Errorf("capi: %d arguments for a function of %d", len(args), fn.nargs)
	}
	var a [2]int32
	copy(a[:], args)
	// No lock: Free runs after the store is closed, when no call can.
	r := C.thaw_call(i.ctx, i.in, C.uint64_t(call), C.uint64_t(ticks), fn.f, C.int32_t(a[0]), C.int32_t(a[1]))
	runtime.KeepAlive(i.store)
	if !r.failed {
		return int64(r.result), nil
	}
	msg := "wasmtime: call failed"
	if r.msg != nil {
		msg = C.GoStringN(r.msg, C.int(r.msg_len))
		C.free(unsafe.Pointer(r.msg))
	}
	if r.has_exit {
		return 0, &ExitError{Status: int(r.exit)}
	}
	return 0, errors.New(msg)
}
