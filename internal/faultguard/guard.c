// guard.c: the fault guard's thread. It blocks in poll(2) on the pager
// processes' pidfds; once every pager is dead it answers the sessions'
// faults with zero pages, counting each as lost first, until it is handed
// live pagers again. It never calls into Go.
#define _GNU_SOURCE
#include "guard.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	uint64_t id;
	int uffd;
	uint64_t base, len;
	uint64_t *shared;
} session;

struct guard {
	pthread_mutex_t mu; // guards everything below but th and efd
	pthread_t th;
	int efd; // wakes the thread: a change, or stop
	int pidfd[2];
	int dead[2]; // pidfd[i] has been seen readable: that pager exited
	int stop;
	int orphan; // every pager is dead: answering faults
	int64_t dead_since; // monotonic ns when every pager was first seen dead; 0: not
	int64_t grace;      // ns to leave the client to replace them first
	session *s;
	int n, cap;
	guard_words w;
	guard_stats st;
	uint64_t page;
};

static void count(session *s, int word) {
	if (s->shared)
		__atomic_fetch_add(&s->shared[word], 1, __ATOMIC_SEQ_CST);
}

static int64_t now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void kick(guard *g) {
	uint64_t one = 1;
	ssize_t r = write(g->efd, &one, sizeof one);
	(void)r; // a full counter wakes the thread as well
}

// all_dead notes which pagers have exited (a pidfd turns readable) and
// reports whether there is at least one and every one has. mu is held.
static int all_dead(guard *g) {
	int have = 0, alive = 0;
	for (int i = 0; i < 2; i++) {
		if (g->pidfd[i] < 0)
			continue;
		have++;
		if (!g->dead[i]) {
			struct pollfd p = {.fd = g->pidfd[i], .events = POLLIN};
			if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
				g->dead[i] = 1;
		}
		if (!g->dead[i])
			alive++;
	}
	return have > 0 && alive == 0;
}

static void wake(int uffd, uint64_t start, uint64_t len) {
	struct uffdio_range r = {.start = start, .len = len};
	ioctl(uffd, UFFDIO_WAKE, &r);
}

// orphan_enter runs once when the last pager is found dead, with mu held:
// a session with a fault outstanding (taken by a dead pager and not
// finished, or still queued) is counted lost, as the client's markLost
// does, before anything wakes its threads; then every region is woken, so
// threads whose fault message died with a pager fault again, into this
// thread.
static void orphan_enter(guard *g) {
	g->st.orphanings++;
	for (int i = 0; i < g->n; i++) {
		session *s = &g->s[i];
		int outstanding = 0;
		if (s->shared) {
			uint64_t b = __atomic_load_n(&s->shared[g->w.begun], __ATOMIC_SEQ_CST);
			uint64_t f = __atomic_load_n(&s->shared[g->w.finished], __ATOMIC_SEQ_CST);
			outstanding = b != f;
			__atomic_store_n(&s->shared[g->w.finished], b, __ATOMIC_SEQ_CST);
		}
		struct pollfd p = {.fd = s->uffd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0 && (p.revents & POLLIN))
			outstanding = 1;
		if (outstanding) {
			count(s, g->w.lost);
			count(s, g->w.errors);
		}
		wake(s->uffd, s->base, s->len);
	}
}

// serve answers every queued fault of every session with a zero page; mu
// is held. Each is counted lost and failed before its thread is woken.
static void serve(guard *g) {
	struct uffd_msg msgs[16];
	for (int i = 0; i < g->n; i++) {
		session *s = &g->s[i];
		for (;;) {
			ssize_t r = read(s->uffd, msgs, sizeof msgs);
			if (r <= 0)
				break; // EAGAIN: nothing queued (the descriptor is non-blocking)
			for (size_t k = 0; k < (size_t)r / sizeof msgs[0]; k++) {
				if (msgs[k].event != UFFD_EVENT_PAGEFAULT)
					continue;
				uint64_t addr = msgs[k].arg.pagefault.address & ~(g->page - 1);
				count(s, g->w.lost);
				count(s, g->w.errors);
				struct uffdio_zeropage z = {.range = {.start = addr, .len = g->page}};
				if (ioctl(s->uffd, UFFDIO_ZEROPAGE, &z) != 0)
					wake(s->uffd, addr, g->page); // EEXIST: installed meanwhile
				g->st.zeroed++;
			}
		}
	}
}

static void *run(void *arg) {
	guard *g = arg;
	struct pollfd *p = NULL;
	int pcap = 0;
	for (;;) {
		pthread_mutex_lock(&g->mu);
		if (g->stop) {
			pthread_mutex_unlock(&g->mu);
			break;
		}
		if (pcap < g->n + 3) {
			pcap = 2 * (g->n + 3);
			struct pollfd *np = realloc(p, pcap * sizeof *p);
			if (!np) {
				// Out of memory: retry soon rather than stop guarding.
				pcap = 0;
				pthread_mutex_unlock(&g->mu);
				usleep(10000);
				continue;
			}
			p = np;
		}
		int n = 0, timeout = -1;
		p[n++] = (struct pollfd){.fd = g->efd, .events = POLLIN};
		if (!g->orphan && g->dead_since) {
			int64_t left = g->dead_since + g->grace - now();
			timeout = left <= 0 ? 0 : (int)(left / 1000000) + 1;
		}
		if (g->orphan) {
			for (int i = 0; i < g->n; i++)
				p[n++] = (struct pollfd){.fd = g->s[i].uffd, .events = POLLIN};
		} else {
			// A dead pager's pidfd stays readable: poll only live ones.
			for (int i = 0; i < 2; i++)
				if (g->pidfd[i] >= 0 && !g->dead[i])
					p[n++] = (struct pollfd){.fd = g->pidfd[i], .events = POLLIN};
		}
		pthread_mutex_unlock(&g->mu);

		// Descriptors in p may be closed and reused once mu is released;
		// poll only wakes this loop, which then rechecks everything
		// under mu (every change kicks efd).
		if (poll(p, n, timeout) < 0 && errno != EINTR)
			usleep(1000);
		if (p[0].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(g->efd, &v, sizeof v);
			(void)r;
		}

		pthread_mutex_lock(&g->mu);
		if (!g->orphan && all_dead(g)) {
			if (!g->dead_since)
				g->dead_since = now();
			if (now() - g->dead_since >= g->grace) {
				g->orphan = 1;
				orphan_enter(g);
			}
		}
		if (g->orphan)
			serve(g);
		pthread_mutex_unlock(&g->mu);
	}
	free(p);
	return NULL;
}

guard *guard_new(guard_words w, int64_t grace_ns) {
	guard *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->w = w;
	g->grace = grace_ns;
	g->pidfd[0] = g->pidfd[1] = -1;
	g->page = (uint64_t)sysconf(_SC_PAGESIZE);
	g->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->efd < 0) {
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->mu, NULL);
	// The thread blocks every signal: process-directed signals go to Go's
	// threads, whose handlers expect to run there.
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&g->th, NULL, run, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		close(g->efd);
		pthread_mutex_destroy(&g->mu);
		free(g);
		errno = err;
		return NULL;
	}
	return g;
}

int guard_add(guard *g, uint64_t id, int uffd, uint64_t base, uint64_t len, uintptr_t shared) {
	pthread_mutex_lock(&g->mu);
	if (g->n == g->cap) {
		int cap = g->cap ? 2 * g->cap : 16;
		session *s = realloc(g->s, cap * sizeof *s);
		if (!s) {
			pthread_mutex_unlock(&g->mu);
			return ENOMEM;
		}
		g->s = s;
		g->cap = cap;
	}
	g->s[g->n++] = (session){.id = id, .uffd = uffd, .base = base, .len = len, .shared = (uint64_t *)shared};
	// Only an answering thread polls the sessions' descriptors: while a
	// pager lives, a restore's add and remove cost no wake-up.
	int wake = g->orphan;
	pthread_mutex_unlock(&g->mu);
	if (wake)
		kick(g);
	return 0;
}

void guard_remove(guard *g, uint64_t id) {
	pthread_mutex_lock(&g->mu);
	for (int i = 0; i < g->n; i++) {
		if (g->s[i].id == id) {
			g->s[i] = g->s[--g->n];
			break;
		}
	}
	int wake = g->orphan; // as in guard_add
	pthread_mutex_unlock(&g->mu);
	if (wake)
		kick(g);
}

void guard_set_pagers(guard *g, int pidfd0, int pidfd1) {
	pthread_mutex_lock(&g->mu);
	for (int i = 0; i < 2; i++)
		if (g->pidfd[i] >= 0)
			close(g->pidfd[i]);
	g->pidfd[0] = pidfd0;
	g->pidfd[1] = pidfd1;
	g->dead[0] = g->dead[1] = 0;
	g->dead_since = 0;
	g->orphan = 0;
	pthread_mutex_unlock(&g->mu);
	kick(g);
}

guard_stats guard_get_stats(guard *g) {
	pthread_mutex_lock(&g->mu);
	guard_stats st = g->st;
	pthread_mutex_unlock(&g->mu);
	return st;
}

void guard_free(guard *g) {
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	pthread_mutex_unlock(&g->mu);
	kick(g);
	pthread_join(g->th, NULL);
	for (int i = 0; i < 2; i++)
		if (g->pidfd[i] >= 0)
			close(g->pidfd[i]);
	close(g->efd);
	pthread_mutex_destroy(&g->mu);
	free(g->s);
	free(g);
}
