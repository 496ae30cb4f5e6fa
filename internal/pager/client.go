package pager

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/errdefs"
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
	// Errors counts faults the pager failed to resolve (normally zero; a
	// read error leaves the faulting thread blocked rather than hand it
	// wrong memory).
	Errors uint64
}

func durationOf(ns uint64) time.Duration { return time.Duration(ns) }

// Pager is a running pager process and the client end of its socket. Its
// methods are safe for concurrent use.
type Pager struct {
	conn *net.UnixConn
	proc *os.Process

	wmu sync.Mutex // serialises writes (one packet each)

	mu      sync.Mutex
	pending map[uint64]*call
	nextID  uint64
	err     error // why the pager is unusable, set before dead is closed

	nextSession atomic.Uint64
	ready       chan struct{}
	dead        chan struct{} // closed when the pager is unusable
	exited      chan struct{} // closed when the process has been reaped
	closing     atomic.Bool
}

// call is one request awaiting its response.
type call struct {
	status   uint8
	payload  []byte
	answered bool // false when done was closed by fail
	done     chan struct{}
}

// Start launches the pager: this executable (os.Executable), re-executed
// with THAW_PAGER_CHILD=1 and one end of a SOCK_SEQPACKET socket pair as
// fd 3. It returns once the pager has said it is serving. ctx bounds the
// start only; the pager lives until Close, or until this process dies: it
// exits when its socket reaches EOF and is killed by Pdeathsig.
func Start(ctx context.Context) (*Pager, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("pager: find executable: %v: %w", err, errdefs.ErrUnavailable)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pager: socketpair: %v: %w", err, errdefs.ErrUnavailable)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "pager"), os.NewFile(uintptr(fds[1]), "pager-child")
	c, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		child.Close()
		return nil, fmt.Errorf("pager: socket: %v: %w", err, errdefs.ErrUnavailable)
	}
	p := &Pager{conn: c.(*net.UnixConn), pending: map[uint64]*call{},
		ready: make(chan struct{}), dead: make(chan struct{}), exited: make(chan struct{})}

	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), EnvChild+"=1")
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Setpgid keeps a terminal's ^C from killing the pager before its
	// parent has stopped using it; Pdeathsig kills it if the parent dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the *thread* that forked the child exits,
		// and Go may retire threads. Fork from a locked thread that
		// stays parked in Wait for the child's whole life.
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err != nil {
			close(p.exited)
			return
		}
		werr := cmd.Wait()
		p.fail(fmt.Errorf("pager process exited (%v): %w", werr, errdefs.ErrUnavailable))
		close(p.exited)
	}()
	err = <-started
	child.Close()
	if err != nil {
		p.conn.Close()
		return nil, fmt.Errorf("pager: start %s: %v: %w", exe, err, errdefs.ErrUnavailable)
	}
	p.proc = cmd.Process
	go p.read()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
		return p, nil
	case <-p.dead:
		err = p.deadErr()
	case <-ctx.Done():
		err = fmt.Errorf("pager: start: %w", ctx.Err())
	case <-timer.C:
		err = fmt.Errorf("pager: not ready after %v: %w", startTimeout, errdefs.ErrUnavailable)
	}
	p.Close()
	return nil, err
}

// Close stops the pager: it closes the socket, which the pager takes as
// the signal to drop every session and exit, and kills it if it has not
// exited after a few seconds. Threads still blocked on faults in regions
// it served stay blocked until the main process closes its own copies of
// their userfaultfds (see docs/pager.md).
func (p *Pager) Close() error {
	p.closing.Store(true)
	p.fail(fmt.Errorf("pager closed: %w", errdefs.ErrUnavailable))
	p.conn.Close()
	if p.proc == nil {
		return nil
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.proc.Kill()
		<-p.exited
	}
	return nil
}

// Done is closed when the pager can no longer serve: it exited, was
// killed, or was closed. Faults in regions it was serving will not be
// served; instances using them must be discarded.
func (p *Pager) Done() <-chan struct{} { return p.dead }

// Pid is the pager process's id.
func (p *Pager) Pid() int { return p.proc.Pid }

func (p *Pager) deadErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// fail marks the pager unusable and fails every pending request.
func (p *Pager) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	p.err = err
	close(p.dead)
	for id, c := range p.pending {
		delete(p.pending, id)
		close(c.done)
	}
}

// read dispatches responses to their callers until the socket fails.
func (p *Pager) read() {
	buf := make([]byte, maxPacket)
	for {
		n, _, _, _, err := p.conn.ReadMsgUnix(buf, nil)
		if err == nil && n == 0 {
			err = errors.New("EOF")
		}
		if err != nil {
			if !p.closing.Load() {
				err = fmt.Errorf("pager connection lost (%v): %w", err, errdefs.ErrUnavailable)
			} else {
				err = fmt.Errorf("pager closed: %w", errdefs.ErrUnavailable)
			}
			p.fail(err)
			return
		}
		h, payload, err := parseHeader(buf[:n])
		if err != nil {
			continue
		}
		if h.op == opReady {
			select {
			case <-p.ready:
			default:
				close(p.ready)
			}
			continue
		}
		p.mu.Lock()
		c, ok := p.pending[h.id]
		if ok {
			c.status = h.status
			c.payload = append(c.payload, payload...)
			if h.flags&flagMore == 0 {
				c.answered = true
				delete(p.pending, h.id)
				close(c.done)
			}
		}
		p.mu.Unlock()
	}
}

// request sends one packet (with descriptors) and waits for the whole
// response.
func (p *Pager) request(h header, payload []byte, fds []int) ([]byte, error) {
	c := &call{done: make(chan struct{})}
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return nil, err
	}
	p.nextID++
	h.id = p.nextID
	p.pending[h.id] = c
	p.mu.Unlock()

	b := h.append(make([]byte, 0, headerSize+len(payload)))
	b = append(b, payload...)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	p.wmu.Lock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	_, _, err := p.conn.WriteMsgUnix(b, oob, nil)
	p.wmu.Unlock()
	if err != nil {
		p.forget(h.id)
		if derr := p.deadErr(); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("pager: send: %v: %w", err, errdefs.ErrUnavailable)
	}

	timer := time.NewTimer(requestTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		p.forget(h.id)
		return nil, fmt.Errorf("pager: no response after %v: %w", requestTimeout, errdefs.ErrUnavailable)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.answered {
		return nil, p.err
	}
	if c.status != statusOK {
		return nil, parseError(c.payload)
	}
	return c.payload, nil
}

func (p *Pager) forget(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
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
func (p *Pager) ServeSource(u *uffd.FD, src SourceSpec, spec Spec) (*Session, error) {
	if spec.Base%pageSize != 0 || spec.Length == 0 || spec.Length%pageSize != 0 {
		return nil, fmt.Errorf("pager: region [%#x,+%d) is not page-aligned and non-empty: %w", spec.Base, spec.Length, errdefs.ErrInvalid)
	}
	if spec.Readahead < 0 || spec.Readahead > MaxReadahead {
		return nil, fmt.Errorf("pager: readahead %d outside [0, %d]: %w", spec.Readahead, MaxReadahead, errdefs.ErrInvalid)
	}
	if len(src.Files)+1 > maxFds || len(src.Params) > maxPacket-headerSize-serveReqSize {
		return nil, fmt.Errorf("pager: source has %d files and %d bytes of parameters: %w", len(src.Files), len(src.Params), errdefs.ErrTooLarge)
	}
	h := header{op: opServe, kind: src.Kind, session: p.nextSession.Add(1)}
	if spec.Record {
		h.flags |= flagRecord
	}
	req := serveReq{base: uint64(spec.Base), length: spec.Length, readahead: uint32(spec.Readahead), params: src.Params}
	fds := []int{u.Fd()}
	// Hold each file's descriptor open (RawConn.Control) while it is sent.
	var send func(i int) error
	send = func(i int) error {
		if i == len(src.Files) {
			_, err := p.request(h, req.append(nil), fds)
			return err
		}
		rc, err := src.Files[i].SyscallConn()
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
	if err := send(0); err != nil {
		return nil, fmt.Errorf("pager: serve: %w", err)
	}
	return &Session{p: p, id: h.session}, nil
}

// Session is one region served by the pager.
type Session struct {
	p      *Pager
	id     uint64
	closed atomic.Bool
}

// Stats returns the session's counters so far.
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
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// Close tells the pager to stop serving the region and drop its copies of
// the userfaultfd and image. It is safe after the region is unmapped, and
// idempotent; a dead pager has dropped them already, so Close then returns
// nil.
func (s *Session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	_, err := s.p.request(header{op: opClose, session: s.id}, nil, nil)
	if err != nil && s.p.deadErr() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pager: close session: %w", err)
	}
	return nil
}
