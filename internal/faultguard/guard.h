// guard.h: the C half of package faultguard (see faultguard.go for why it
// is C: its thread must keep running while the Go runtime is stopped).
#ifndef THAW_FAULTGUARD_H
#define THAW_FAULTGUARD_H

#include <stdint.h>

typedef struct guard guard;

// Word indices (u64) of a session's shared counter page.
typedef struct {
	int begun, finished, lost, errors;
} guard_words;

typedef struct {
	uint64_t orphanings; // times every pager was found dead
	uint64_t zeroed;     // faults answered with a zero page
} guard_stats;

// guard_new starts the guard thread; NULL and errno on failure. The guard
// answers faults once every pager has been dead for grace_ns.
guard *guard_new(guard_words w, int64_t grace_ns);
// guard_add watches a session: uffd must stay open until guard_remove;
// shared (may be 0) is the address of its counter page.
int guard_add(guard *g, uint64_t id, int uffd, uint64_t base, uint64_t len, uintptr_t shared);
// guard_remove stops watching a session; when it returns, the thread no
// longer uses its uffd or counter page.
void guard_remove(guard *g, uint64_t id);
// guard_set_pagers hands the guard pidfds of the pager processes (-1 for
// none); it owns them from now on and closes the previous ones.
void guard_set_pagers(guard *g, int pidfd0, int pidfd1);
guard_stats guard_get_stats(guard *g);
// guard_free stops the thread and frees the guard.
void guard_free(guard *g);

#endif
