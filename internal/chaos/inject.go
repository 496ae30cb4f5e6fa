package chaos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/thaw-run/thaw/internal/snapshot"
)

// step is one scheduled fault: at a fraction of the load's duration, do
// something and say what was touched.
type step struct {
	at   float64
	name string
	do   func(ctx context.Context) (string, error)
}

// inject runs the fault schedule and returns what it did. The slow-client
// window's connections are closed when the window ends.
func (r *run) inject(ctx context.Context, start time.Time) []Fault {
	var slow *slowClients
	steps := []step{
		{0.08, "object store stopped, disk cache emptied", func(context.Context) (string, error) {
			if err := r.minio("stop"); err != nil {
				return "", err
			}
			n, err := removeFiles(filepath.Join(r.dataDir, "store-cache"))
			return fmt.Sprintf("%d cached files removed", n), err
		}},
		// The pagers keep the chunks they fetched: killing them while the
		// store is down makes their successors go to the dead remote.
		{0.14, "primary pager killed, object store down", r.killPager},
		{0.22, "object store restarted", func(context.Context) (string, error) { return "", r.minio("start") }},
		// No pager is left: the worker's fault guard answers what they
		// left outstanding, and the worker starts new ones.
		{0.32, "primary and standby pagers killed together", r.killPagers},
		{0.42, "cached chunk corrupted", func(context.Context) (string, error) {
			return corruptLargest(filepath.Join(r.dataDir, "store-cache"))
		}},
		{0.52, "snapshot images truncated (hello's, hello-mmap's)", func(context.Context) (string, error) {
			var out []string
			for _, fn := range []string{"hello", "hello-mmap"} {
				d, err := truncateImages(filepath.Join(r.dataDir, "snapshots", fn))
				if err != nil {
					return "", err
				}
				out = append(out, d)
			}
			return strings.Join(out, " "), nil
		}},
		{0.62, fmt.Sprintf("%d slow connections opened", r.opts.SlowConns), func(ctx context.Context) (string, error) {
			slow = openSlow(ctx, r.addr, r.token, r.opts.SlowConns)
			return slow.String(), nil
		}},
		{0.80, "slow connections closed", func(context.Context) (string, error) {
			if slow == nil {
				return "", nil
			}
			d := slow.String()
			slow.Close()
			return d, nil
		}},
	}
	var out []Fault
	for _, s := range steps {
		at := start.Add(time.Duration(s.at * float64(r.opts.Duration)))
		select {
		case <-ctx.Done():
			return out
		case <-time.After(time.Until(at)):
		}
		detail, err := s.do(ctx)
		if err != nil {
			detail = fmt.Sprintf("%s (injection failed: %v)", detail, err)
		}
		r.logf("%5.0fs %s: %s", time.Since(start).Seconds(), s.name, detail)
		out = append(out, Fault{Name: s.name, AtS: time.Since(start).Seconds(), Detail: detail})
	}
	return out
}

// killPagers kills every pager process of the worker (its children) with
// SIGKILL at once.
func (r *run) killPagers(context.Context) (string, error) {
	kids := children(r.pid())
	if len(kids) == 0 {
		return "", fmt.Errorf("no pager process")
	}
	var errs []error
	for _, k := range kids {
		errs = append(errs, syscall.Kill(k, syscall.SIGKILL))
	}
	return fmt.Sprintf("pids %v", kids), errors.Join(errs...)
}

// killPager kills the worker's primary pager process with SIGKILL: the
// oldest child, since a standby is always started after its primary.
func (r *run) killPager(context.Context) (string, error) {
	var oldest int
	var oldestStart uint64
	for _, k := range children(r.pid()) {
		if st, ok := startTime(k); ok && (oldest == 0 || st < oldestStart) {
			oldest, oldestStart = k, st
		}
	}
	if oldest == 0 {
		return "", fmt.Errorf("no pager process")
	}
	return fmt.Sprintf("pid %d", oldest), syscall.Kill(oldest, syscall.SIGKILL)
}

// startTime is a process's start time in clock ticks since boot
// (/proc/PID/stat field 22).
func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces: fields count from its closing ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// removeFiles deletes the regular files under dir and counts them.
func removeFiles(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && os.Remove(p) == nil {
			n++
		}
		return nil
	})
	return n, err
}

// corruptLargest flips bytes in the middle of the largest file under dir.
func corruptLargest(dir string) (string, error) {
	var best string
	var size int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Size() > size {
			best, size = p, fi.Size()
		}
		return nil
	})
	if best == "" {
		return "", fmt.Errorf("no file under %s", dir)
	}
	f, err := os.OpenFile(best, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	junk := make([]byte, 64)
	for i := range junk {
		junk[i] = byte(i*131 + 7)
	}
	if _, err := f.WriteAt(junk, size/2); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s, %d bytes at %d", filepath.Base(best), len(junk), size/2), nil
}

// truncateImages cuts every memory image under dir to an eighth of its
// size, well into the pages a request reads.
func truncateImages(dir string) (string, error) {
	var done []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != snapshot.ImageFile {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if err := os.Truncate(p, fi.Size()/8); err != nil {
			return err
		}
		done = append(done, fmt.Sprintf("%s %d -> %d bytes", filepath.Base(filepath.Dir(p)), fi.Size(), fi.Size()/8))
		return nil
	})
	return fmt.Sprint(done), err
}

// slowClients holds connections that send a request very slowly: half
// stop inside the headers, half declare a 6 MB body and send a little of
// it, and all of them trickle a byte now and then, as a slowloris does.
type slowClients struct {
	conns  []net.Conn
	failed int
	cut    atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
}

func openSlow(ctx context.Context, addr, token string, n int) *slowClients {
	s := &slowClients{stop: make(chan struct{})}
	head := "POST /fn/hello/ HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token +
		"\r\nContent-Length: 6000000\r\n\r\n"
	chunk := make([]byte, 64<<10)
	d := net.Dialer{Timeout: 5 * time.Second}
	for i := range n {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			s.failed++
			continue
		}
		var first []byte
		if i%2 == 0 {
			first = []byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n")
		} else {
			first = append([]byte(head), chunk...)
		}
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(first); err != nil {
			s.cut.Add(1)
			c.Close()
			continue
		}
		s.conns = append(s.conns, c)
		s.wg.Add(1)
		go s.trickle(c, i%2 == 0)
	}
	return s
}

// trickle sends one byte every 10 s until the window ends or the worker
// closes the connection.
func (s *slowClients) trickle(c net.Conn, header bool) {
	defer s.wg.Done()
	b := []byte("a")
	if header {
		b = []byte("X")
	}
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(b); err != nil {
			s.cut.Add(1)
			return
		}
	}
}

func (s *slowClients) String() string {
	return fmt.Sprintf("%d open, %d refused, %d cut by the worker so far", len(s.conns), s.failed, s.cut.Load())
}

// Close ends the window.
func (s *slowClients) Close() {
	close(s.stop)
	s.wg.Wait()
	for _, c := range s.conns {
		c.Close()
	}
}
