package pager

import (
	"context"
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
)

// process is one pager child and the client end of its socket. A Pager
// replaces its process when the child dies.
type process struct {
	conn *net.UnixConn
	proc *os.Process

	wmu sync.Mutex // serialises writes (one packet each)

	mu      sync.Mutex
	pending map[uint64]*call
	nextID  uint64
	err     error // why the process is unusable, set before dead is closed

	ready   chan struct{}
	dead    chan struct{} // closed when the process is unusable
	exited  chan struct{} // closed when the child has been reaped
	closing atomic.Bool
}

// call is one request awaiting its response.
type call struct {
	status   uint8
	payload  []byte
	answered bool // false when done was closed by fail
	done     chan struct{}
}

// startProcess launches the child (see Start) and waits until it is ready.
func startProcess(ctx context.Context) (*process, error) {
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
	p := &process{conn: c.(*net.UnixConn), pending: map[uint64]*call{},
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
	p.close()
	return nil, err
}

// close closes the socket, which the child takes as the signal to drop
// every session and exit, and kills the child if it has not exited after a
// few seconds.
func (p *process) close() {
	p.closing.Store(true)
	p.fail(fmt.Errorf("pager closed: %w", errdefs.ErrUnavailable))
	p.conn.Close()
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.proc.Kill()
		<-p.exited
	}
}

func (p *process) deadErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// fail marks the process unusable and fails every pending request.
func (p *process) fail(err error) {
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
func (p *process) read() {
	buf := make([]byte, maxPacket)
	for {
		n, _, _, _, err := p.conn.ReadMsgUnix(buf, nil)
		if err == nil && n == 0 {
			err = errors.New("EOF")
		}
		if err != nil {
			if p.closing.Load() {
				err = fmt.Errorf("pager closed: %w", errdefs.ErrUnavailable)
			} else {
				err = fmt.Errorf("pager connection lost (%v): %w", err, errdefs.ErrUnavailable)
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
		if c, ok := p.pending[h.id]; ok {
			c.status = h.status
			c.payload = append(c.payload, payload...)
			if len(c.payload) > maxResponse {
				// Only a broken pager sends this much: answer the call
				// with an error rather than grow without bound.
				c.status = statusErr
				c.payload = appendError(nil, fmt.Errorf("response past %d bytes: %w", maxResponse, errdefs.ErrCorrupt))
				h.flags &^= flagMore
			}
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
// response, at most requestTimeout.
func (p *process) request(h header, payload []byte, fds []int) ([]byte, error) {
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
		// A pager that is alive but does not answer is wedged (stopped,
		// deadlocked): it would not serve faults either. Kill it; the
		// Pager's watch then hands its sessions to the standby or a new
		// pager.
		if !p.closing.Load() && p.proc != nil {
			_ = p.proc.Kill()
		}
		return nil, fmt.Errorf("pager: no response after %v (killed it): %w", requestTimeout, errdefs.ErrUnavailable)
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

func (p *process) forget(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}
