package pager

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/faultguard"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/uffd"
)

// Timeouts. A request to a live pager takes microseconds; these only bound
// how long a caller can wait on a wedged one (a dead one fails at once:
// its socket reaches EOF).
var (
	startTimeout   = 10 * time.Second
	requestTimeout = 10 * time.Second
	stopTimeout    = 5 * time.Second
)

// Spec describes a region handed to the pager.
type Spec struct {
	// Base is the start of the registered region (page-aligned).
	Base uintptr
	// Length is the number of bytes registered (a multiple of the page
	// size).
	Length uint64
	// Record keeps the region offsets of faulted pages in first-fault
	// order, for Session.Trace (REAP's record phase). Pages installed by
	// readahead never fault and so are not in the trace.
	Record bool
	// Readahead is the number of pages after a faulting one that are
	// installed with it, in the same read and UFFDIO_COPY, when they are in
	// the image (not a hole, not past its end) and not yet installed by
	// this session. 0 serves one page per fault, REAP's baseline; at most
	// MaxReadahead.
	Readahead int
}

// Stats count what the pager did for one session.
type Stats struct {
	// Faults is the number of first faults served (one per page that
	// faulted; repeated messages for a page are Duplicates).
	Faults uint64
	// ZeroFaults is how many Faults were resolved with a zero page (a hole
	// in the image or an offset past its end).
	ZeroFaults uint64
	// Duplicates counts messages for pages this session had already
	// resolved (several threads faulting on one page).
	Duplicates uint64
	// PagesInstalled counts pages installed with UFFDIO_COPY, readahead
	// included, excluding pages found already present.
	PagesInstalled uint64
	// BytesRead counts bytes read from the page source.
	BytesRead uint64
	// ServeTime is the total time spent resolving faults in the pager,
	// from reading a message to the end of its UFFDIO_COPY.
	ServeTime time.Duration
	// Errors counts faults the pager refused or failed to resolve
	// (normally zero; a page it cannot read or verify within the fault
	// budget is answered with a zero page and counted here).
	Errors uint64
}

func durationOf(ns uint64) time.Duration { return time.Duration(ns) }

// Restart policy: a pager that dies is replaced, unless it died
// maxRestarts times within restartWindow (a crash loop): then the Pager
// stops for good. Standby deaths have their own budget of the same size;
// past it the Pager runs without a standby until restartWindow has passed
// (spawnStandby).
const (
	defaultMaxRestarts = 3
	restartWindow      = time.Minute
)

// guardGrace is how long every pager may be dead before the fault guard
// answers their faults with zero pages: long enough for this process, if
// it is running, to start a new primary that serves them correctly; short
// against the 4 s in which every fault is answered.
var guardGrace = time.Second

// standbyRetry is how long after a standby failed to start another is
// tried; it doubles with every failure in a row, up to maxStandbyRetry.
var (
	standbyRetry    = time.Second
	maxStandbyRetry = 30 * time.Second
)

// Pager is the client of a pager process. Its methods are safe for
// concurrent use.
//
// # Standby
//
// Pager keeps a second pager process as a hot standby: it holds every
// session's descriptors without serving them, and a pidfd of the primary.
// When the primary exits, the standby promotes itself at once — serves
// every session and wakes each region, so threads blocked on faults the
// primary had read fault again into it — without any help from this
// process. That matters because this process may be unable to help: a
// thread blocked on an unserved fault holds its P, and the next GC phase
// that needs every P freezes the whole process (docs/pager.md). Pager then
// makes the standby its primary and starts a new standby.
//
// Without a live standby (both died, or the standby budget is spent), the
// Pager starts a new primary itself and re-serves and wakes every session:
// best-effort, as it needs this process to run. If this process is frozen
// by then, the fault guard (package faultguard) answers the faults after
// guardGrace, with zero pages counted lost.
//
// Requests in flight when a pager dies fail with errdefs.ErrUnavailable;
// after a takeover Stats restart from zero and Trace reports the recording
// lost. After repeated deaths the Pager gives up: Done is closed and every
// request fails.
type Pager struct {
	// smu serialises Serve, Session.Close, takeovers and standby
	// (re)starts, so every pager process holds exactly the live sessions.
	smu      sync.Mutex
	sessions map[uint64]*Session

	mu          sync.Mutex
	cur         *process
	standby     *process // nil when there is none
	useStandby  bool
	err         error // set when stopped for good
	restarts    []time.Time
	sbDeaths    []time.Time
	sbRetry     bool // a retry of spawnStandby is scheduled
	sbFails     int  // standby starts failed in a row
	maxRestarts int
	dead        chan struct{}

	nextSession atomic.Uint64
	log         *slog.Logger

	// guard answers the sessions' faults with zero pages, counted lost,
	// while every pager process is dead: from a C thread, because then
	// this process may be frozen by a thread blocked on such a fault.
	guard *faultguard.Guard
}

// Start launches the pager: this executable (os.Executable), re-executed
// with THAW_PAGER_CHILD=1 and one end of a SOCK_SEQPACKET socket pair as
// fd 3, and a standby started the same way. It returns once the primary has
// said it is serving (a standby that fails to start is logged, not fatal).
// ctx bounds the start only; the pagers live until Close, or until this
// process dies: they exit when their socket reaches EOF and are killed by
// Pdeathsig.
func Start(ctx context.Context) (*Pager, error) {
	return start(ctx, true)
}

func start(ctx context.Context, standby bool) (*Pager, error) {
	guard, err := faultguard.New(faultguard.Words{Begun: sharedBegun, Finished: sharedFinished, Lost: sharedLost, Errors: sharedErrors}, guardGrace)
	if err != nil {
		return nil, fmt.Errorf("pager: %w", err)
	}
	proc, err := startProcess(ctx)
	if err != nil {
		guard.Close()
		return nil, err
	}
	p := &Pager{cur: proc, sessions: map[uint64]*Session{}, maxRestarts: defaultMaxRestarts, useStandby: standby,
		dead: make(chan struct{}), log: slog.Default().With("component", "pager"), guard: guard}
	go p.watch(proc)
	go p.watchStuck()
	p.smu.Lock()
	p.spawnStandby()
	p.mu.Lock()
	p.guardPagersLocked()
	p.mu.Unlock()
	p.smu.Unlock()
	return p, nil
}

// guardPagersLocked tells the guard which processes serve the sessions
// now: the primary and the standby; p.mu is held. A process that has died
// unnoticed counts as dead.
func (p *Pager) guardPagersLocked() {
	pids := []int{p.cur.proc.Pid}
	if p.standby != nil {
		pids = append(pids, p.standby.proc.Pid)
	}
	if err := p.guard.SetPagers(pids...); err != nil {
		p.log.Error("telling the fault guard about the pagers", "err", err)
	}
}

// watchStuck kills a primary that is alive but not answering faults when
// no standby is left to do it (the standby's watchdog works even while
// this process is frozen; this one needs it to run): died then restarts
// the pager and re-serves every session.
func (p *Pager) watchStuck() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-p.dead:
			return
		case now := <-t.C:
			p.mu.Lock()
			cur, sb := p.cur, p.standby
			p.mu.Unlock()
			if sb != nil && sb.deadErr() == nil {
				continue
			}
			if id, ok := p.stalled(now); ok {
				p.log.Error("pager is not answering faults; killing it", "session", id, "pid", cur.proc.Pid, "after", stuckAfter)
				_ = cur.proc.Kill()
			}
		}
	}
}

// stalled is server.stalled on the client's side.
func (p *Pager) stalled(now time.Time) (uint64, bool) {
	p.smu.Lock()
	defer p.smu.Unlock()
	for id, s := range p.sessions {
		begun, finished := s.loadShared(sharedBegun), s.loadShared(sharedFinished)
		pending, _ := s.u.Pending()
		if s.stall.stuck(now, begun, finished, begun != finished || pending) {
			return id, true
		}
	}
	return 0, false
}

// Close stops the pager processes. Threads still blocked on faults in
// regions they served stay blocked until the main process closes its own
// copies of their userfaultfds (see docs/pager.md).
func (p *Pager) Close() error {
	p.smu.Lock()
	defer p.smu.Unlock()
	p.mu.Lock()
	cur, sb := p.cur, p.standby
	p.standby = nil
	p.stopLocked(fmt.Errorf("pager closed: %w", errdefs.ErrUnavailable))
	p.mu.Unlock()
	if sb != nil {
		sb.close() // first, so it does not take over from cur
	}
	cur.close()
	p.guard.Close()
	return nil
}

// stopLocked marks the Pager stopped for good; p.mu is held.
func (p *Pager) stopLocked(err error) {
	if p.err != nil {
		return
	}
	p.err = err
	close(p.dead)
}

// Done is closed when the Pager has stopped for good: closed, or dead too
// often to restart. Faults in regions it was serving will not be served;
// instances using them must be discarded.
func (p *Pager) Done() <-chan struct{} { return p.dead }

// Pid is the current primary pager process's id.
func (p *Pager) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur.proc.Pid
}

// current returns the live process, or why there is none.
func (p *Pager) current() (*process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	return p.cur, nil
}

func (p *Pager) request(h header, payload []byte, fds []int) ([]byte, error) {
	proc, err := p.current()
	if err != nil {
		return nil, err
	}
	return proc.request(h, payload, fds)
}

// recent trims times to those within restartWindow of now.
func recent(times []time.Time, now time.Time) []time.Time {
	out := times[:0]
	for _, t := range times {
		if now.Sub(t) < restartWindow {
			out = append(out, t)
		}
	}
	return out
}

// spawnStandby starts a standby for the current primary and hands it every
// live session, unless standbys are off; smu is held. A standby that fails
// to start (a session's source cannot be opened while the object store is
// down, say) is retried after standbyRetry, doubling up to
// maxStandbyRetry; failed starts are not deaths (the budget is for
// standbys that crash once running). Over that budget, it is retried after
// restartWindow. Without a standby, the death of the primary while a fault
// is outstanding costs every instance it served.
func (p *Pager) spawnStandby() {
	p.mu.Lock()
	if p.err != nil || !p.useStandby || p.standby != nil {
		p.mu.Unlock()
		return
	}
	p.sbDeaths = recent(p.sbDeaths, time.Now())
	if len(p.sbDeaths) >= p.maxRestarts {
		p.retryStandbyLocked(restartWindow)
		p.mu.Unlock()
		p.log.Error("standby pager keeps dying; running without one for a while", "deaths", len(p.sbDeaths), "retry_in", restartWindow)
		return
	}
	primary := p.cur
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	sb, err := startProcess(ctx)
	cancel()
	if err == nil {
		err = p.makeStandby(sb, primary)
		if err != nil {
			sb.close()
		}
	}
	if err != nil {
		p.mu.Lock()
		p.sbFails++
		d := min(standbyRetry<<min(p.sbFails-1, 10), maxStandbyRetry)
		p.retryStandbyLocked(d)
		p.mu.Unlock()
		p.log.Error("starting a standby pager", "err", err, "retry_in", d)
		return
	}
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		sb.close()
		return
	}
	p.standby = sb
	p.sbFails = 0
	p.guardPagersLocked()
	p.mu.Unlock()
	go p.watch(sb)
}

// retryStandbyLocked schedules spawnStandby after d, unless one is already
// scheduled; p.mu is held.
func (p *Pager) retryStandbyLocked(d time.Duration) {
	if p.sbRetry {
		return
	}
	p.sbRetry = true
	time.AfterFunc(d, func() {
		p.smu.Lock()
		defer p.smu.Unlock()
		p.mu.Lock()
		p.sbRetry = false
		p.mu.Unlock()
		p.spawnStandby()
	})
}

// makeStandby tells sb to stand by for primary and hands it every session.
func (p *Pager) makeStandby(sb, primary *process) error {
	pidfd, err := unix.PidfdOpen(primary.proc.Pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of the primary pager: %w", err)
	}
	_, err = sb.request(header{op: opStandby}, nil, []int{pidfd})
	unix.Close(pidfd)
	if err != nil {
		return err
	}
	for _, s := range p.sessions {
		if err := s.serveOn(sb); err != nil {
			return err
		}
	}
	return nil
}

// watch handles proc dying on its own.
func (p *Pager) watch(proc *process) {
	<-proc.dead
	if proc.closing.Load() {
		return
	}
	p.died(proc, proc.deadErr())
}

func (p *Pager) died(proc *process, why error) {
	p.smu.Lock()
	defer p.smu.Unlock()
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	switch proc {
	case p.standby:
		p.standby = nil
		p.sbDeaths = append(p.sbDeaths, now)
		p.guardPagersLocked()
		p.mu.Unlock()
		proc.close()
		p.log.Warn("standby pager died; replacing it", "err", why)
		p.spawnStandby()
		return
	case p.cur:
	default:
		p.mu.Unlock()
		return
	}
	p.restarts = recent(p.restarts, now)
	if len(p.restarts) >= p.maxRestarts {
		sb := p.standby
		p.standby = nil
		p.stopLocked(fmt.Errorf("pager died %d times within %v, not restarting (last: %v): %w",
			len(p.restarts)+1, restartWindow, why, errdefs.ErrUnavailable))
		p.mu.Unlock()
		p.log.Error("pager died; giving up", "err", why, "sessions", len(p.sessions))
		if sb != nil {
			sb.close()
		}
		proc.close()
		// No pager is left to answer these regions' faults, and a thread
		// blocked on one freezes this process at its next GC: count every
		// session as failed, then unregister its range, which wakes its
		// waiters; they fault again as ordinary anonymous memory (zero
		// pages), and the owner discards the instance.
		for _, s := range p.sessions {
			s.addShared(sharedLost)
			s.addShared(sharedErrors)
			_ = s.u.Unregister(s.spec.Base, s.spec.Length)
		}
		return
	}
	p.restarts = append(p.restarts, now)
	for _, s := range p.sessions {
		s.restarted.Store(true)
	}
	if sb := p.standby; sb != nil && sb.deadErr() == nil {
		// The standby has promoted itself (or will, as soon as it sees
		// the primary's pidfd): make it the primary.
		p.cur, p.standby = sb, nil
		p.guardPagersLocked()
		p.mu.Unlock()
		proc.close()
		p.log.Warn("pager died; standby took over", "err", why, "pid", sb.proc.Pid, "sessions", len(p.sessions))
		p.spawnStandby()
		return
	}
	p.mu.Unlock()
	proc.close()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	next, err := startProcess(ctx)
	cancel()
	p.mu.Lock()
	if err != nil {
		p.stopLocked(fmt.Errorf("pager died (%v) and could not be restarted: %w", why, err))
		p.mu.Unlock()
		p.log.Error("pager died; restart failed", "err", err)
		return
	}
	p.cur = next
	p.mu.Unlock()
	failed := 0
	for _, s := range p.sessions {
		s.markLost()
		if err := s.serveOn(next); err != nil {
			failed++
			p.log.Error("re-serving a session after a pager restart", "err", err)
		}
		// Threads whose fault message died with the old pager sleep
		// until woken; woken, they fault again, into the new pager.
		_ = s.u.Wake(s.spec.Base, s.spec.Length)
	}
	// Until now the guard answered these sessions' faults with zero
	// pages (every pager it knew was dead); the new pager serves them.
	p.mu.Lock()
	p.guardPagersLocked()
	p.mu.Unlock()
	p.log.Warn("pager died; restarted", "err", why, "pid", next.proc.Pid, "sessions", len(p.sessions), "failed", failed)
	go p.watch(next)
	p.spawnStandby()
}

// Serve hands an already-registered userfaultfd and the image file to the
// pager, which serves the region's faults until Session.Close. The page at
// region offset o is served from image offset o; offsets at or past the
// image's size, and holes, get a zero page. u and image stay open and owned
// by the caller (the pager has its own copies).
func (p *Pager) Serve(u *uffd.FD, image *os.File, spec Spec) (*Session, error) {
	return p.ServeSource(u, SourceSpec{Kind: KindFile, Files: []*os.File{image}}, spec)
}

// SourceSpec names a page source for the pager to build: its kind (KindFile,
// ...), the descriptors it reads from, sent with the request, and
// kind-specific parameters (at most a few KiB: they travel in one packet).
type SourceSpec struct {
	Kind   uint8
	Files  []*os.File
	Params []byte
}

// ServeSource is Serve with a page source other than a plain image file.
// The source's files, like u, must stay open until Session.Close: a
// restarted pager is handed them again.
func (p *Pager) ServeSource(u *uffd.FD, src SourceSpec, spec Spec) (*Session, error) {
	if spec.Base%pageSize != 0 || spec.Length == 0 || spec.Length%pageSize != 0 {
		return nil, fmt.Errorf("pager: region [%#x,+%d) is not page-aligned and non-empty: %w", spec.Base, spec.Length, errdefs.ErrInvalid)
	}
	if spec.Readahead < 0 || spec.Readahead > MaxReadahead {
		return nil, fmt.Errorf("pager: readahead %d outside [0, %d]: %w", spec.Readahead, MaxReadahead, errdefs.ErrInvalid)
	}
	if len(src.Files)+2 > maxFds || len(src.Params) > maxPacket-headerSize-serveReqSize {
		return nil, fmt.Errorf("pager: source has %d files and %d bytes of parameters: %w", len(src.Files), len(src.Params), errdefs.ErrTooLarge)
	}
	s := &Session{p: p, id: p.nextSession.Add(1), u: u, src: src, spec: spec, memfd: -1}
	if err := s.mapShared(); err != nil {
		return nil, fmt.Errorf("pager: serve: %w", err)
	}
	p.smu.Lock()
	defer p.smu.Unlock()
	proc, err := p.current()
	if err != nil {
		s.unmapShared()
		return nil, fmt.Errorf("pager: serve: %w", err)
	}
	p.mu.Lock()
	sb := p.standby
	p.mu.Unlock()
	// The primary and the standby get the session at once: each hand-off
	// is a wake-up of another process, which on a loaded machine costs
	// more than the rest of a small restore. Both have it before Serve
	// returns, so the standby can take over any fault of the instance.
	sbErr := make(chan error, 1)
	if sb != nil {
		go func() { sbErr <- s.serveOn(sb) }()
	}
	err = s.serveOn(proc)
	var errSB error
	if sb != nil {
		errSB = <-sbErr
	}
	if err != nil {
		if sb != nil && errSB == nil {
			_, _ = sb.request(header{op: opClose, session: s.id}, nil, nil)
		}
		s.unmapShared()
		return nil, fmt.Errorf("pager: serve: %w", err)
	}
	p.sessions[s.id] = s
	if err := p.guard.Add(s.id, u.Fd(), spec.Base, spec.Length, s.shared); err != nil {
		p.log.Error("the fault guard will not watch a session", "err", err)
	}
	if sb != nil {
		if err := errSB; err != nil && sb.deadErr() == nil {
			// A standby missing a session would take over without it:
			// replace the standby.
			p.log.Error("handing a session to the standby pager", "err", err)
			p.mu.Lock()
			if p.standby == sb {
				p.standby = nil
			}
			p.mu.Unlock()
			go func() {
				sb.close()
				p.smu.Lock()
				defer p.smu.Unlock()
				p.spawnStandby()
			}()
		}
	}
	return s, nil
}

// serveOn sends the session's serve request to proc.
func (s *Session) serveOn(proc *process) error {
	h := header{op: opServe, kind: s.src.Kind, session: s.id, flags: flagShared}
	if s.spec.Record {
		h.flags |= flagRecord
	}
	req := serveReq{base: uint64(s.spec.Base), length: s.spec.Length, readahead: uint32(s.spec.Readahead), params: s.src.Params}
	fds := []int{s.u.Fd(), s.memfd}
	// Hold each file's descriptor open (RawConn.Control) while it is sent.
	var send func(i int) error
	send = func(i int) error {
		if i == len(s.src.Files) {
			_, err := proc.request(h, req.append(nil), fds)
			return err
		}
		rc, err := s.src.Files[i].SyscallConn()
		if err != nil {
			return fmt.Errorf("source file %d: %w", i, err)
		}
		var rerr error
		if err := rc.Control(func(fd uintptr) {
			fds = append(fds, int(fd))
			rerr = send(i + 1)
		}); err != nil {
			return fmt.Errorf("source file %d: %w", i, err)
		}
		return rerr
	}
	return send(0)
}

// Session is one region served by the pager.
type Session struct {
	p         *Pager
	id        uint64
	u         *uffd.FD
	src       SourceSpec
	spec      Spec
	closed    atomic.Bool
	restarted atomic.Bool // a pager restart happened during the session

	// memfd and shared are a page mapped by the client and the pager, whose
	// first word the pager increments for every fault it refuses or fails
	// (Errors), before it wakes the faulting thread. It survives pager
	// restarts: every pager serving the session maps the same page.
	sharedMu sync.Mutex // guards shared against Close
	memfd    int
	shared   []byte

	// watchStuck's view of the pager's progress (under Pager.smu).
	stall stallWatch
}

// mapShared creates and maps the session's shared counter page, populated
// (MAP_POPULATE): the first touch of a new page is a page fault that cost
// about 25 µs on this project's VMs, and the first touch came with a
// restore's first check of the counts (Failures), on its start, even for a
// session opened ahead at the previous instance's teardown
// (docs/restore.md, "A read without a thread").
func (s *Session) mapShared() error {
	fd, err := unix.MemfdCreate("thaw-pager-session", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	if err := unix.Ftruncate(fd, sharedSize); err != nil {
		unix.Close(fd)
		return fmt.Errorf("memfd: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, sharedSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("map memfd: %w", err)
	}
	s.memfd, s.shared = fd, mem
	return nil
}

func (s *Session) unmapShared() {
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	if s.shared != nil {
		_ = unix.Munmap(s.shared)
		s.shared = nil
	}
	if s.memfd >= 0 {
		_ = unix.Close(s.memfd)
		s.memfd = -1
	}
}

// sharedWord returns word i of the shared page; sharedMu is held or the
// session is live (not closed).
func (s *Session) sharedWord(i int) *uint64 {
	if s.shared == nil {
		return nil
	}
	return (*uint64)(unsafe.Pointer(&s.shared[8*i]))
}

func (s *Session) addShared(i int) {
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	if w := s.sharedWord(i); w != nil {
		atomic.AddUint64(w, 1)
	}
}

func (s *Session) loadShared(i int) uint64 {
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	if w := s.sharedWord(i); w != nil {
		return atomic.LoadUint64(w)
	}
	return 0
}

// markLost counts the session as failed if a fault was outstanding when
// its pager died (taken and not finished, or still queued): the new pager
// will serve it, but the instance is not trusted and must be discarded.
// A session whose stall got its pager killed (stallWatch.fired) counts
// too. The caller holds p.smu, which guards s.stall.
func (s *Session) markLost() {
	begun, finished := s.loadShared(sharedBegun), s.loadShared(sharedFinished)
	pending, _ := s.u.Pending()
	fired := s.stall.fired
	s.stall.fired = false
	if begun == finished && !pending && !fired {
		return
	}
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	if s.shared == nil {
		return
	}
	atomic.AddUint64(s.sharedWord(sharedLost), 1)
	atomic.AddUint64(s.sharedWord(sharedErrors), 1)
	atomic.StoreUint64(s.sharedWord(sharedFinished), begun)
}

// Failures splits Errors by cause.
type Failures struct {
	// Unavailable counts pages the source could not deliver within the
	// fault budget (store remote down, chunk deleted), served as zeros.
	Unavailable uint64
	// Corrupt counts pages that failed their checksum, served as zeros.
	Corrupt uint64
	// Lost counts faults outstanding when the pager serving them died or
	// was killed for not answering.
	Lost uint64
}

// Failures returns the session's refused or failed faults by cause, all
// pager restarts included; zero after Close.
func (s *Session) Failures() Failures {
	return Failures{Unavailable: s.loadShared(sharedUnavailable), Corrupt: s.loadShared(sharedCorrupt), Lost: s.loadShared(sharedLost)}
}

// Errors is the number of faults the pager has refused (a page that failed
// its checksum, served as zeros) or failed to resolve in this session, all
// pager restarts included. It is a memory load, cheap enough to check
// after every call: the pager counts before it wakes the faulting thread,
// so a call that returned has had its faults counted.
// After Close it reports 0.
func (s *Session) Errors() uint64 {
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	if s.shared == nil {
		return 0
	}
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.shared[0])))
}

// Counts are the fault counts a session's pagers keep in the shared page.
type Counts struct {
	// Faults counts faults served from the source (duplicates and
	// refused pages excluded), every pager of the session included.
	Faults uint64
	// BytesRead counts the bytes read from the source for them.
	BytesRead uint64
	// Tiers splits the bytes of the chunks a store source read for them
	// by the class of tier that served each (the pager's caches, a
	// peer's, the object store); zero for file sources.
	Tiers store.TierBytes
}

// Counts returns the session's fault counts with two memory loads (no
// round trip), all pager restarts included. After Close it reports zeros.
func (s *Session) Counts() Counts {
	return Counts{Faults: s.loadShared(sharedFaults), BytesRead: s.loadShared(sharedBytesRead),
		Tiers: store.TierBytes{Cache: int64(s.loadShared(sharedCacheBytes)), Peer: int64(s.loadShared(sharedPeerBytes)),
			Remote: int64(s.loadShared(sharedRemoteBytes))}}
}

// Stats returns the session's counters so far (since the last pager
// restart, if there was one). It is a round trip to the pager process;
// Counts and Errors read the main counts from the shared page.
func (s *Session) Stats() (Stats, error) {
	b, err := s.p.request(header{op: opStats, session: s.id}, nil, nil)
	if err != nil {
		return Stats{}, fmt.Errorf("pager: stats: %w", err)
	}
	return parseStats(b)
}

// Trace returns the region offsets of the faulted pages in first-fault
// order. It is empty unless the session was started with Spec.Record.
func (s *Session) Trace() ([]uint64, error) {
	b, err := s.p.request(header{op: opTrace, session: s.id}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("pager: trace: %w", err)
	}
	if s.restarted.Load() && s.spec.Record {
		return nil, fmt.Errorf("pager: trace: the pager restarted during the session and its recording is incomplete: %w", errdefs.ErrUnavailable)
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
		// The worker turns offsets into page numbers of the image:
		// anything outside the region is a broken pager, not a page.
		if out[i] >= s.spec.Length || out[i]%pageSize != 0 {
			return nil, fmt.Errorf("pager: trace offset %#x outside the region of %d bytes: %w", out[i], s.spec.Length, errdefs.ErrCorrupt)
		}
	}
	return out, nil
}

// Close tells the pager to stop serving the region and drop its copies of
// the userfaultfd and source files. It is safe after the region is
// unmapped, and idempotent; a dead pager has dropped them already, so
// Close then returns nil.
func (s *Session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.p.guard.Remove(s.id)
	s.p.smu.Lock()
	delete(s.p.sessions, s.id)
	s.p.mu.Lock()
	sb := s.p.standby
	s.p.mu.Unlock()
	s.p.smu.Unlock()
	if sb != nil {
		_, _ = sb.request(header{op: opClose, session: s.id}, nil, nil)
	}
	defer s.unmapShared()
	proc, err := s.p.current()
	if err != nil {
		return nil // stopped for good: nothing is left to drop
	}
	if _, err := proc.request(header{op: opClose, session: s.id}, nil, nil); err != nil && proc.deadErr() == nil {
		return fmt.Errorf("pager: close session: %w", err)
	}
	return nil
}
