package pager

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/uffd"
)

const pageSize = uffd.PageSize

// MaxReadahead bounds Spec.Readahead (pages installed after the faulting
// one): 255 pages keep one fault's copy at 1 MiB.
const MaxReadahead = 255

// RunIfChild turns this process into the pager when it was started as one
// (THAW_PAGER_CHILD=1, by Start) and never returns in that case; otherwise
// it returns at once. Call it first thing in main and in TestMain of
// packages that start a pager, before anything else starts goroutines that
// matter. stores opens the chunk stores of KindStore sources (the store
// stack's stack.OpenReaderJSON); with nil, the pager serves none.
func RunIfChild(stores StoreOpener) {
	if os.Getenv(EnvChild) != "1" {
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", "pager", "pid", os.Getpid())
	if err := runChild(log, stores); err != nil {
		log.Error("pager stopped", "err", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runChild serves the socket on childFd until it closes.
func runChild(log *slog.Logger, stores StoreOpener) error {
	f := os.NewFile(childFd, "pager-socket")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("socket on fd %d: %w", childFd, err)
	}
	conn, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("fd %d is a %T, not a unix socket", childFd, c)
	}
	s := &server{conn: conn, log: log, stores: newStoreCache(stores), sessions: map[uint64]*session{}}
	defer s.closeAll()
	if err := s.send(header{op: opReady}, nil); err != nil {
		return nil // the client is gone already
	}
	return s.run()
}

// server is the pager's side of the socket. Requests are handled one at a
// time on the reading goroutine (each is cheap); faults are served by one
// goroutine per session.
//
// A standby server (opStandby) holds its sessions' descriptors without
// serving them until the primary pager, whose pidfd it was given, exits;
// then it serves them all and wakes every region (promote).
type server struct {
	conn   *net.UnixConn
	log    *slog.Logger
	stores *storeCache // of KindStore sources
	wmu    sync.Mutex  // serialises sends (responses and opPromoted)

	mu       sync.Mutex // guards sessions and standby against promote
	sessions map[uint64]*session
	standby  bool
}

func (s *server) send(h header, payload []byte) error {
	b := h.append(make([]byte, 0, headerSize+len(payload)))
	b = append(b, payload...)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, _, err := s.conn.WriteMsgUnix(b, nil, nil); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func (s *server) run() error {
	buf := make([]byte, maxPacket)
	oob := make([]byte, unix.CmsgSpace(maxFds*4))
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return nil // the client closed the socket or died: stop
		}
		if n == 0 {
			return nil // EOF on a seqpacket socket
		}
		fds, ferr := receivedFds(oob[:oobn])
		h, payload, err := parseHeader(buf[:n])
		if err == nil {
			err = ferr
		}
		if err != nil {
			closeFds(fds)
			s.log.Warn("bad request", "err", err)
			continue
		}
		resp := header{op: h.op, id: h.id, session: h.session}
		out, err := s.handle(h, payload, fds)
		if err != nil {
			resp.status = statusErr
			out = appendError(nil, err)
		}
		if h.op == opTrace && err == nil {
			err = s.sendChunks(resp, out)
		} else {
			err = s.send(resp, out)
		}
		if err != nil {
			return nil // the client is gone: nothing left to serve
		}
	}
}

// receivedFds returns the descriptors passed with a packet (close-on-exec:
// net sets MSG_CMSG_CLOEXEC).
func receivedFds(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var all []int
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		all = append(all, fds...)
	}
	return all, nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// sendChunks sends a trace (u64s, little endian) in packets of at most
// traceChunk offsets; all but the last carry flagMore.
func (s *server) sendChunks(h header, b []byte) error {
	const chunk = traceChunk * 8
	for {
		n := min(len(b), chunk)
		hh := h
		if n < len(b) {
			hh.flags |= flagMore
		}
		if err := s.send(hh, b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if len(b) == 0 {
			return nil
		}
	}
}

func (s *server) handle(h header, payload []byte, fds []int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.op != opServe && h.op != opStandby {
		closeFds(fds)
	}
	switch h.op {
	case opServe:
		return nil, s.serve(h, payload, fds)
	case opStandby:
		if len(fds) != 1 {
			closeFds(fds)
			return nil, fmt.Errorf("standby wants the primary's pidfd: %w", errdefs.ErrInvalid)
		}
		s.standby = true
		go s.watchPrimary(fds[0])
		return nil, nil
	case opStats:
		ss, err := s.session(h.session)
		if err != nil {
			return nil, err
		}
		return ss.stats().append(nil), nil
	case opTrace:
		ss, err := s.session(h.session)
		if err != nil {
			return nil, err
		}
		return ss.traceBytes(), nil
	case opClose:
		ss, err := s.session(h.session)
		if err != nil {
			return nil, nil // closing twice is not an error
		}
		delete(s.sessions, h.session)
		ss.close()
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown op %d: %w", h.op, errdefs.ErrInvalid)
	}
}

func (s *server) session(id uint64) (*session, error) {
	ss, ok := s.sessions[id]
	if !ok {
		return nil, fmt.Errorf("no session %d: %w", id, errdefs.ErrNotFound)
	}
	return ss, nil
}

func (s *server) serve(h header, payload []byte, fds []int) error {
	if len(fds) < 1 {
		return fmt.Errorf("serve without a userfaultfd: %w", errdefs.ErrInvalid)
	}
	req, err := parseServeReq(payload)
	if err != nil {
		closeFds(fds)
		return err
	}
	if _, dup := s.sessions[h.session]; dup {
		closeFds(fds)
		return fmt.Errorf("session %d already exists: %w", h.session, errdefs.ErrInvalid)
	}
	if req.base%pageSize != 0 || req.length == 0 || req.length%pageSize != 0 || req.readahead > MaxReadahead {
		closeFds(fds)
		return fmt.Errorf("bad region [%#x,+%d) readahead %d: %w", req.base, req.length, req.readahead, errdefs.ErrInvalid)
	}
	u, err := uffd.NewFD(fds[0])
	if err != nil {
		closeFds(fds[1:])
		return err
	}
	var shared []byte
	if h.flags&flagShared != 0 {
		if len(fds) < 2 {
			u.Close()
			return fmt.Errorf("serve: shared counter page missing: %w", errdefs.ErrInvalid)
		}
		// Populated now, with the session, not by the session's first
		// fault, which would wait for it (Session.mapShared).
		shared, err = unix.Mmap(fds[1], 0, sharedSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		_ = unix.Close(fds[1])
		if err != nil {
			u.Close()
			closeFds(fds[2:])
			return fmt.Errorf("serve: map the shared counter page: %w", err)
		}
		fds = append(fds[:1:1], fds[2:]...)
	}
	files := make([]*os.File, 0, len(fds)-1)
	for _, fd := range fds[1:] {
		files = append(files, os.NewFile(uintptr(fd), "page-source"))
	}
	unmapShared := func() {
		if shared != nil {
			_ = unix.Munmap(shared)
		}
	}
	src, err := openSource(h.kind, files, req.params, s.stores)
	if err != nil {
		u.Close()
		unmapShared()
		return err
	}
	ss, err := newSession(u, src, req, h.flags&flagRecord != 0, s.log.With("session", h.session))
	if err != nil {
		u.Close()
		src.Close()
		unmapShared()
		return err
	}
	ss.shared = shared
	s.sessions[h.session] = ss
	if !s.standby {
		ss.start()
	}
	return nil
}

// stuckAfter is how long a session may have faults outstanding (queued on
// its uffd, or taken by the primary and not finished) without any of them
// progressing before the standby declares the primary stuck and kills it.
// It is longer than faultBudget, the most a live primary spends on one
// fault. watchInterval is how often the standby looks.
var (
	stuckAfter    = 8 * time.Second
	watchInterval = 250 * time.Millisecond
)

// watchPrimary waits for the primary pager to exit, then promotes this one.
// Meanwhile it watches the primary's progress on every session (stalled)
// and kills a primary that is alive but stuck: the client may be frozen
// (a GC waiting on a faulting thread's P) and unable to notice.
func (s *server) watchPrimary(pidfd int) {
	defer unix.Close(pidfd)
	pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, int(watchInterval/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			s.log.Error("watching the primary pager", "err", err)
			return
		}
		if n > 0 && pfd[0].Revents != 0 {
			break
		}
		if id, ok := s.stalled(time.Now()); ok {
			s.log.Error("primary pager is not answering faults; killing it", "session", id, "after", stuckAfter)
			if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil {
				s.log.Error("killing the stuck primary pager", "err", err)
			}
		}
	}
	s.mu.Lock()
	s.standby = false
	lost := 0
	for _, ss := range s.sessions {
		// A session with faults outstanding when the primary went is
		// not trusted: its instance must be discarded (counted before
		// any of its threads is woken).
		if ss.stall.fired || ss.outstanding() {
			lost++
			ss.addShared(sharedLost, 1)
			ss.countError()
			if w := ss.sharedWord(sharedFinished); w != nil {
				atomic.StoreUint64(w, atomic.LoadUint64(ss.sharedWord(sharedBegun)))
			}
		}
		ss.start()
		// Threads whose fault message died with the primary sleep until
		// woken; woken, they fault again, into this pager.
		_ = ss.u.Wake(uintptr(ss.base), ss.length)
	}
	n := len(s.sessions)
	s.mu.Unlock()
	s.log.Warn("primary pager exited; standby promoted", "sessions", n, "with_faults_outstanding", lost)
	_ = s.send(header{op: opPromoted}, nil)
}

// outstanding reports whether the session has faults not yet answered:
// messages queued on its uffd, or taken by a pager and not finished.
func (ss *session) outstanding() bool {
	if ss.loadShared(sharedBegun) != ss.loadShared(sharedFinished) {
		return true
	}
	pending, _ := ss.u.Pending()
	return pending
}

// stalled reports a session (by id) whose faults have been outstanding
// without progress for stuckAfter.
func (s *server) stalled(now time.Time) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		if ss.shared == nil {
			continue
		}
		begun, finished := ss.loadShared(sharedBegun), ss.loadShared(sharedFinished)
		if ss.stall.stuck(now, begun, finished, ss.outstanding()) {
			return id, true
		}
	}
	return 0, false
}

// stallWatch follows one session's fault counters from the page the
// pagers and the client share, for the standby's and the client's stuck
// checks alike.
//
// Whether a fault is outstanding flickers while a pager is stuck: a Go
// thread blocked on a fault leaves it for every signal it takes (the
// runtime's preemption signals come every 100 µs while a stop-the-world
// waits for its P) and faults again on return, so its message is off
// the queue for a moment each time. An observation with nothing
// outstanding ends the stall only once nothing has been outstanding for
// quietAfter; one that lands in such a moment does not restart the clock.
type stallWatch struct {
	since           time.Time // when the stall began (zero: none)
	seen            time.Time // when a fault was last seen outstanding
	begun, finished uint64
	// fired is set when stuck reported the session: its faults were
	// outstanding when its pager was killed, whatever the takeover's own
	// look at the queue sees.
	fired bool
}

// quietAfter is how long a session must show nothing outstanding, without
// its counters moving, for its stall to end.
const quietAfter = 2 * time.Second

// stuck records one observation and reports whether the session has had
// faults outstanding, with no fault begun or finished, for stuckAfter.
func (w *stallWatch) stuck(now time.Time, begun, finished uint64, outstanding bool) bool {
	if begun != w.begun || finished != w.finished {
		w.since, w.begun, w.finished = time.Time{}, begun, finished
	}
	switch {
	case outstanding:
		w.seen = now
		if w.since.IsZero() {
			w.since = now
		}
	case !w.since.IsZero() && now.Sub(w.seen) >= quietAfter:
		w.since = time.Time{}
	}
	if !w.since.IsZero() && now.Sub(w.since) >= stuckAfter {
		w.since, w.fired = time.Time{}, true
		return true
	}
	return false
}

func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		ss.close()
		delete(s.sessions, id)
	}
}

// session serves one registered region.
type session struct {
	u         *uffd.FD
	src       Source
	base      uint64
	length    uint64
	readahead int
	record    bool
	log       *slog.Logger

	buf    []byte   // page-aligned, (1+readahead) pages
	done   []uint64 // bitmap of pages this session has resolved
	broken bool     // the source failed past the fault budget: refuse the rest

	// The standby's view of the primary's progress (stalled).
	stall   stallWatch
	started bool // serve is running (false while held by a standby)
	exit    chan struct{}

	faults, zeroFaults, dups, pages, bytesRead, serveNs, errs atomic.Uint64
	// shared, when the client sent one, is a page it maps too: its first
	// word mirrors errs, so the client learns of a refused page with a
	// memory load after each call instead of a round trip.
	shared []byte

	mu    sync.Mutex
	trace []uint64
}

func newSession(u *uffd.FD, src Source, req serveReq, record bool, log *slog.Logger) (*session, error) {
	buf, err := uffd.Mmap(uint64(1+req.readahead) * pageSize)
	if err != nil {
		return nil, err
	}
	npages := req.length / pageSize
	return &session{u: u, src: src, base: req.base, length: req.length, readahead: int(req.readahead),
		record: record, log: log, buf: buf, done: make([]uint64, (npages+63)/64), exit: make(chan struct{})}, nil
}

// start serves the session on its own goroutine.
func (s *session) start() {
	if !s.started {
		s.started = true
		go s.serve()
	}
}

func (s *session) isDone(p uint64) bool { return s.done[p/64]&(1<<(p%64)) != 0 }
func (s *session) markDone(p uint64)    { s.done[p/64] |= 1 << (p % 64) }

// serve reads fault messages until the descriptor is closed.
//
// It waits in Go's netpoller. A dedicated thread blocked in poll(2) was
// measured slower per fault (12-16 µs of pager time against 9 µs): on
// wake-up the thread must reacquire a P that sysmon has handed off.
func (s *session) serve() {
	defer close(s.exit)
	msgs := make([]uffd.Msg, 64)
	for {
		n, err := s.u.Read(msgs)
		// Every fault message read counts as begun at once: a pager
		// stopped while it works through a batch leaves the rest
		// outstanding in the counters, where the watchdogs see them
		// (the messages are no longer queued on the descriptor).
		faults := 0
		for i := range n {
			if msgs[i].Event == uffd.EventPagefault {
				faults++
			}
		}
		s.addShared(sharedBegun, uint64(faults))
		for i := range n {
			if msgs[i].Event == uffd.EventPagefault {
				s.fault(msgs[i].Address)
			}
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				s.log.Warn("reading faults", "err", err)
			}
			return
		}
	}
}

// Fault bounds. A thread that faults holds its P in the client until the
// fault is answered, and the client's next stop-the-world GC waits for that
// P: an unanswered fault freezes the whole worker. So every fault is
// answered within faultBudget, with the page, or with a zero page counted as
// an error (the client then discards the instance).
var (
	// faultBudget bounds the time spent reading one fault's pages,
	// retries included. It stays below the standby's stuckAfter, so a
	// primary retrying a read is never taken for a stuck one.
	faultBudget = 4 * time.Second
	// attemptTimeout bounds one read attempt of a source that takes a
	// deadline (the store: a chunk fetch from the disk cache or the
	// remote, 512 KiB by default).
	attemptTimeout = 2 * time.Second
	// outageHold: for this long after a fault gave up because its source
	// was unavailable, faults of every session get one short attempt
	// (outageAttempt) instead of the full budget: a store that is down
	// should not cost each new restore the whole budget of frozen time.
	outageHold    = 10 * time.Second
	outageAttempt = time.Second
	retryBackoff  = 50 * time.Millisecond
	maxBackoff    = time.Second
)

// lastOutage is when (unix ns) a fault last gave up on an unavailable
// source, in this pager process.
var lastOutage atomic.Int64

// contextReader is a Source whose reads take a deadline (the store source).
type contextReader interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
}

// retryable reports whether a failed read may succeed if tried again: not a
// page that fails its checksum, a chunk that is gone, or a bad request.
func retryable(err error) bool {
	return !errors.Is(err, errdefs.ErrCorrupt) && !errors.Is(err, errdefs.ErrNotFound) && !errors.Is(err, errdefs.ErrInvalid)
}

// read fills buf from the source at off, retrying transient failures with
// backoff, within faultBudget (one outageAttempt during an outage).
func (s *session) read(buf []byte, off int64) (int, error) {
	now := time.Now()
	deadline, attempt := now.Add(faultBudget), attemptTimeout
	if now.UnixNano()-lastOutage.Load() < int64(outageHold) {
		deadline, attempt = now.Add(outageAttempt), outageAttempt
	}
	backoff := retryBackoff
	for {
		var (
			n   int
			err error
		)
		if cr, ok := s.src.(contextReader); ok {
			d := time.Now().Add(attempt)
			if d.After(deadline) {
				d = deadline
			}
			ctx, cancel := context.WithDeadline(context.Background(), d)
			var tally store.Tally
			n, err = cr.ReadAtContext(store.WithTally(ctx, &tally), buf, off)
			cancel()
			s.addTiers(tally.Bytes())
		} else {
			n, err = s.src.ReadAt(buf, off)
		}
		if err == nil || !retryable(err) || time.Now().Add(backoff).After(deadline) {
			return n, err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

// fault resolves the fault at addr: a zero page for holes and offsets past
// the image, otherwise the page and up to readahead following pages that
// are in the image and not yet resolved, in one pread and one UFFDIO_COPY.
// A page that cannot be read within the budget is answered with a zero page
// and counted (refuse).
func (s *session) fault(addr uint64) {
	defer s.addShared(sharedFinished, 1)
	t0 := time.Now()
	if addr < s.base || addr >= s.base+s.length {
		s.countError()
		return
	}
	off := (addr - s.base) &^ (pageSize - 1)
	page := off / pageSize
	if s.isDone(page) {
		// Another thread's message for a page already installed: its
		// thread has been or will be woken by the copy; wake anyway, it
		// is cheap and guards against a lost wake-up.
		s.dups.Add(1)
		_ = s.u.Wake(uintptr(s.base+off), pageSize)
		return
	}
	if s.record {
		s.mu.Lock()
		s.trace = append(s.trace, off)
		s.mu.Unlock()
	}
	s.faults.Add(1)
	s.addShared(sharedFaults, 1)
	if s.broken {
		// The source already failed this session past its budget: the
		// instance will be discarded, so answer at once.
		s.refuse(page, sharedUnavailable, nil)
		return
	}
	size := s.src.Size()
	if int64(off) >= size || s.src.Zero(int64(off)) {
		s.zeroFaults.Add(1)
		if err := s.u.ZeroPage(uintptr(s.base+off), pageSize); err != nil {
			s.failed(err)
		}
		s.markDone(page)
		s.serveNs.Add(uint64(time.Since(t0)))
		return
	}
	n := uint64(1)
	for int(n) <= s.readahead {
		p := page + n
		o := p * pageSize
		if o >= s.length || int64(o) >= size || s.isDone(p) || s.src.Zero(int64(o)) {
			break
		}
		n++
	}
	buf := s.buf[:n*pageSize]
	got, err := s.read(buf, int64(off))
	s.bytesRead.Add(uint64(max(got, 0)))
	if w := s.sharedWord(sharedBytesRead); w != nil {
		atomic.AddUint64(w, uint64(max(got, 0)))
	}
	if err != nil {
		// A page that fails its checksum, or that the source cannot
		// deliver within the budget (store remote down, chunk gone), is
		// never installed. The faulting thread gets a zero page so it
		// does not hang (a blocked fault freezes the client at its next
		// GC); the error is counted, and the owner must discard the
		// instance and whatever it computed.
		cause := sharedCorrupt
		if !errors.Is(err, errdefs.ErrCorrupt) {
			cause = sharedUnavailable
			s.broken = true
			if !errors.Is(err, errdefs.ErrNotFound) {
				lastOutage.Store(time.Now().UnixNano())
			}
		}
		s.refuse(page, cause, fmt.Errorf("read image at %d: %w", off, err))
		return
	}
	clear(buf[got:]) // the image ends inside this run
	installed, err := s.u.Copy(uintptr(s.base+off), uffd.Addr(buf), uint64(len(buf)))
	s.pages.Add(uint64(installed) / pageSize)
	if err != nil {
		s.failed(err)
	}
	for i := range n {
		s.markDone(page + i)
	}
	s.serveNs.Add(uint64(time.Since(t0)))
}

// refuse answers a fault on page with a zero page, counting it as an error
// of cause (a shared word) first.
func (s *session) refuse(page uint64, cause int, err error) {
	s.addShared(cause, 1)
	if err != nil {
		s.failed(err)
	} else {
		s.countError()
	}
	if zerr := s.u.ZeroPage(uintptr(s.base+page*pageSize), pageSize); zerr != nil {
		s.failed(zerr)
	}
	s.markDone(page)
}

// failed counts a fault the pager could not resolve. The usual cause is a
// region unmapped (ENOENT) or a client gone (ESRCH) while faults were
// queued; neither leaves a thread waiting.
func (s *session) failed(err error) {
	if s.countError() == 1 {
		s.log.Warn("resolving a fault", "err", err)
	}
}

// countError counts an unresolved or refused fault, in the shared page too.
func (s *session) countError() uint64 {
	n := s.errs.Add(1)
	s.addShared(sharedErrors, 1)
	return n
}

// sharedWord returns word i of the shared page, nil without one.
func (s *session) sharedWord(i int) *uint64 {
	if s.shared == nil {
		return nil
	}
	return (*uint64)(unsafe.Pointer(&s.shared[8*i]))
}

func (s *session) addShared(i int, n uint64) {
	if w := s.sharedWord(i); w != nil && n > 0 {
		atomic.AddUint64(w, n)
	}
}

// addTiers adds the bytes a read got from each class of tier to the
// shared page.
func (s *session) addTiers(b store.TierBytes) {
	words := [...]int{sharedCacheBytes, sharedPeerBytes, sharedRemoteBytes}
	for j, n := range [...]int64{b.Cache, b.Peer, b.Remote} {
		if w := s.sharedWord(words[j]); w != nil && n > 0 {
			atomic.AddUint64(w, uint64(n))
		}
	}
}

func (s *session) loadShared(i int) uint64 {
	if w := s.sharedWord(i); w != nil {
		return atomic.LoadUint64(w)
	}
	return 0
}

func (s *session) stats() Stats {
	return Stats{Faults: s.faults.Load(), ZeroFaults: s.zeroFaults.Load(), Duplicates: s.dups.Load(),
		PagesInstalled: s.pages.Load(), BytesRead: s.bytesRead.Load(), ServeTime: durationOf(s.serveNs.Load()),
		Errors: s.errs.Load()}
}

func (s *session) traceBytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, 0, 8*len(s.trace))
	for _, o := range s.trace {
		b = binary.LittleEndian.AppendUint64(b, o)
	}
	return b
}

// close stops serving and drops the session's descriptors; it waits for
// the serving goroutine so the buffer can be unmapped.
func (s *session) close() {
	s.u.Close()
	if s.started {
		<-s.exit
	}
	s.src.Close()
	_ = uffd.Munmap(s.buf)
	if s.shared != nil {
		_ = unix.Munmap(s.shared)
	}
}
