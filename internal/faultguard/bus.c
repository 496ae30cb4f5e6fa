// bus.c: SIGBUS on a guarded file mapping. A MAP_PRIVATE mapping of a file
// that something truncated raises SIGBUS (BUS_ADRERR) on a page past the new
// end; Go's handler then ends the process, whether the access was in Go
// code, in a cgo call or in guest machine code. The handler here maps an
// anonymous zero page over the faulting page and returns, so the access is
// retried and reads zeros; it counts the page in the range's slot, and the
// owner discards the instance after its call. Everything it does is
// async-signal-safe: atomic loads and stores, and mmap(2).
#define _GNU_SOURCE
#include "bus.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// One slot per live mmap instance; a full table refuses the next guard.
#define BUS_SLOTS 4096
// thaw's pages (uffd.PageSize); sysconf is not async-signal-safe.
#define BUS_PAGE 4096

typedef struct {
	_Atomic uintptr_t start, end; // end 0: free
	_Atomic uint64_t holes;
} slot;

static slot slots[BUS_SLOTS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; // claims and releases
static struct sigaction prev;
static int installed;

static void handler(int sig, siginfo_t *info, void *uc) {
	if (info->si_code == BUS_ADRERR) {
		uintptr_t a = (uintptr_t)info->si_addr;
		for (int i = 0; i < BUS_SLOTS; i++) {
			uintptr_t end = atomic_load_explicit(&slots[i].end, memory_order_acquire);
			if (end == 0 || a >= end || a < atomic_load_explicit(&slots[i].start, memory_order_acquire)) {
				continue;
			}
			void *p = (void *)(a & ~(uintptr_t)(BUS_PAGE - 1));
			int saved = errno;
			void *r = mmap(p, BUS_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			errno = saved;
			if (r == p) {
				atomic_fetch_add(&slots[i].holes, 1);
				return;
			}
			break;
		}
	}
	// Not ours (or the page could not be replaced): what would have
	// happened without this handler.
	if (prev.sa_flags & SA_SIGINFO) {
		prev.sa_sigaction(sig, info, uc);
		return;
	}
	if (prev.sa_handler == SIG_IGN) {
		return;
	}
	if (prev.sa_handler != SIG_DFL) {
		prev.sa_handler(sig);
		return;
	}
	// Default action: restore it; the retried access raises the signal
	// again and ends the process as it would have.
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
}

int bus_install(void) {
	int rc = 0;
	pthread_mutex_lock(&mu);
	if (!installed) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = handler;
		// SA_ONSTACK: Go requires it of every handler, as goroutine stacks
		// are too small to take a signal on; Go's own flags and mask
		// otherwise. prev is read first: the handler uses it.
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
		if (sigaction(SIGBUS, NULL, &prev) != 0) {
			rc = errno;
		} else {
			sa.sa_mask = prev.sa_mask;
			// prev is complete before any thread can run the handler.
			atomic_thread_fence(memory_order_seq_cst);
			if (sigaction(SIGBUS, &sa, NULL) != 0) {
				rc = errno;
			} else {
				installed = 1;
			}
		}
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

int bus_guard(uintptr_t base, uint64_t len) {
	int got = -1;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < BUS_SLOTS; i++) {
		if (atomic_load(&slots[i].end) == 0) {
			atomic_store(&slots[i].holes, 0);
			atomic_store(&slots[i].start, base);
			atomic_store_explicit(&slots[i].end, base + len, memory_order_release);
			got = i;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return got;
}

uint64_t bus_holes(int slot) { return atomic_load(&slots[slot].holes); }

void bus_release(int slot) {
	pthread_mutex_lock(&mu);
	atomic_store_explicit(&slots[slot].end, 0, memory_order_release);
	atomic_store(&slots[slot].start, 0);
	pthread_mutex_unlock(&mu);
}
