// Package testnet runs real `thaw serve` processes as hosts of a small
// network, for cluster tests: each host is a network namespace (thaw-nI,
// address 10.77.0.(10+I)) with a veth on one bridge (thawbr0, whose
// address 10.77.0.1 the root namespace holds, so a MinIO or NATS started
// there is reachable from every host). scripts/netns.sh builds and removes
// the network; this package drives it from tests and adds the processes,
// readiness, SIGKILL, partitions and cleanup.
//
// The namespaces' names are fixed (scripts and people can find them), so
// one network exists at a time: New takes an exclusive lock file that
// serialises its users across test processes (the integration tests and
// another package's may run at once under `go test -p 2`), then destroys
// what an aborted earlier run left (a test binary killed by -timeout runs
// no cleanups) before it creates its own. t.Cleanup kills every process in
// the namespaces and removes the network, also when the test fails.
//
// It needs root and iproute2's `ip netns`; without them New skips the test
// and says why.
package testnet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/testminio"
	"github.com/thaw-run/thaw/internal/testwasm"
)

const (
	// BridgeIP is the root namespace's address on the bridge.
	BridgeIP = "10.77.0.1"
	// Port is the port every host's `thaw serve` listens on (each host has
	// its own port space).
	Port = 8080
	// MaxHosts is the most hosts a network can have.
	MaxHosts = 200

	lockPath     = "/run/lock/thaw-testnet.lock"
	lockWait     = 5 * time.Minute  // another test's network
	scriptWait   = 60 * time.Second // one netns.sh call
	readyWait    = 60 * time.Second // `thaw serve` to answer /healthz
	exitWait     = 10 * time.Second // a killed process to be reaped
	probeTimeout = 2 * time.Second  // one readiness probe
)

// Net is a network of hosts. Its methods fail the test on error; call them
// from the test's goroutine.
type Net struct {
	t      testing.TB
	script string
	dir    string
	hosts  []*Host
}

// Host is one network namespace and the `thaw serve` it runs, if any.
type Host struct {
	// Index is the host's number, 1..n.
	Index int
	// Namespace is its network namespace's name (thaw-nI).
	Namespace string
	// IP is its address on the bridge.
	IP string
	// URL is where its `thaw serve` answers: http://IP:8080.
	URL string
	// Data is its data directory, kept across restarts of the host.
	Data string

	process
	daemons []*Daemon
}

// process is a process running inside a host, its output appended to a
// log file.
type process struct {
	logPath string
	proc    *os.Process
	exited  chan struct{} // closed once proc is reaped
}

// Daemon is a process other than `thaw serve` a test runs inside a host
// (a nats-server, say).
type Daemon struct {
	process
}

// New builds a network of n hosts (no process runs on them yet) and
// registers its removal with t.Cleanup. It skips the test without root or
// without `ip netns`.
func New(t testing.TB, n int) *Net {
	t.Helper()
	if n < 1 || n > MaxHosts {
		t.Fatalf("testnet: %d hosts, want 1..%d", n, MaxHosts)
	}
	if os.Geteuid() != 0 {
		t.Skip("testnet: network namespaces need root (run the test as root, as CI does)")
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		t.Skipf("testnet: `ip netns` is unavailable (install iproute2): %v %s", err, out)
	}
	unlock := lock(t)
	nt := &Net{t: t, script: filepath.Join(testwasm.Root(), "scripts", "netns.sh"), dir: t.TempDir()}
	t.Cleanup(func() {
		nt.killAll()
		if err := nt.run("destroy"); err != nil {
			t.Errorf("testnet: %v", err)
		}
		unlock()
	})
	// What an aborted run left: its processes, namespaces and veths.
	if err := nt.run("destroy"); err != nil {
		t.Fatalf("testnet: removing a stale network: %v", err)
	}
	if err := nt.run("create", fmt.Sprint(n)); err != nil {
		if strings.Contains(err.Error(), "Operation not permitted") {
			t.Skipf("testnet: root without CAP_NET_ADMIN (a container?): %v", err)
		}
		t.Fatalf("testnet: %v", err)
	}
	for i := 1; i <= n; i++ {
		ip := fmt.Sprintf("10.77.0.%d", 10+i)
		nt.hosts = append(nt.hosts, &Host{Index: i, Namespace: fmt.Sprintf("thaw-n%d", i), IP: ip,
			URL: fmt.Sprintf("http://%s:%d", ip, Port), Data: filepath.Join(nt.dir, fmt.Sprintf("n%d", i)),
			process: process{logPath: filepath.Join(nt.dir, fmt.Sprintf("n%d.log", i))}})
	}
	return nt
}

// lock takes the exclusive lock on lockPath, waiting up to lockWait, and
// returns its release. The kernel releases it if the process dies.
func lock(t testing.TB) func() {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		t.Fatalf("testnet: %v", err)
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("testnet: %v", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("testnet: lock %s (another test's network, for %v): %v", lockPath, lockWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run runs `netns.sh args...` within scriptWait.
func (nt *Net) run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), scriptWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", append([]string{nt.script}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Host returns host i (1-based).
func (nt *Net) Host(i int) *Host {
	nt.t.Helper()
	if i < 1 || i > len(nt.hosts) {
		nt.t.Fatalf("testnet: no host %d (have %d)", i, len(nt.hosts))
	}
	return nt.hosts[i-1]
}

// Hosts returns every host, in order.
func (nt *Net) Hosts() []*Host { return nt.hosts }

// Serve starts `bin serve --addr IP:8080 --data DATA args...` on host i,
// its output appended to the host's log, and waits until it answers
// /healthz. The process dies with the test binary (Pdeathsig) and is
// killed at cleanup. A host runs one process at a time.
func (nt *Net) Serve(i int, bin string, args ...string) *Host {
	nt.t.Helper()
	h := nt.start(i, bin, args)
	if err := h.waitReady(); err != nil {
		nt.t.Fatalf("testnet: host %d: %v\n%s", i, err, h.Log())
	}
	return h
}

// ServeAll starts `bin serve` on every host at once, host h with the
// arguments args(h), and waits until all of them answer /healthz: the
// members of a cluster that wait for each other to form a quorum start
// together, as a cluster's machines do.
func (nt *Net) ServeAll(bin string, args func(h *Host) []string) {
	nt.t.Helper()
	for _, h := range nt.hosts {
		nt.start(h.Index, bin, args(h))
	}
	for _, h := range nt.hosts {
		if err := h.waitReady(); err != nil {
			nt.t.Fatalf("testnet: host %d: %v\n%s", h.Index, err, h.Log())
		}
	}
}

// start starts `bin serve ...` on host i without waiting for it.
func (nt *Net) start(i int, bin string, args []string) *Host {
	nt.t.Helper()
	h := nt.Host(i)
	if h.Running() {
		nt.t.Fatalf("testnet: host %d already runs a process", i)
	}
	if err := os.MkdirAll(h.Data, 0o755); err != nil {
		nt.t.Fatal(err)
	}
	argv := append([]string{bin, "serve", "--addr", fmt.Sprintf("%s:%d", h.IP, Port), "--data", h.Data}, args...)
	if err := h.process.start(h.Namespace, argv); err != nil {
		nt.t.Fatalf("testnet: start %s on host %d: %v", bin, i, err)
	}
	return h
}

// Daemon starts name with args inside host i, its output in a log of its
// own, and returns at once. It dies with the test binary and is killed at
// cleanup.
func (nt *Net) Daemon(i int, name string, args ...string) *Daemon {
	nt.t.Helper()
	h := nt.Host(i)
	d := &Daemon{process{logPath: filepath.Join(nt.dir, fmt.Sprintf("n%d-%s-%d.log", i, filepath.Base(name), len(h.daemons)))}}
	if err := d.start(h.Namespace, append([]string{name}, args...)); err != nil {
		nt.t.Fatalf("testnet: start %s on host %d: %v", name, i, err)
	}
	h.daemons = append(h.daemons, d)
	return d
}

// Kill sends SIGKILL to the daemon and waits until it is gone.
func (d *Daemon) Kill() error { return d.kill() }

// start runs argv inside namespace ns, appending its output to the log.
func (p *process) start(ns string, argv []string) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = append(os.Environ(), "THAW_TOKEN=")
	cmd.Stdout, cmd.Stderr = logf, logf
	// `ip netns exec` execs bin in place, so the process is thaw itself.
	// Pdeathsig fires when the thread that forked exits: fork from a
	// locked thread that stays in Wait for the process's life.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	p.exited = make(chan struct{})
	go func(exited chan struct{}) {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			_ = cmd.Wait()
		}
		close(exited)
	}(p.exited)
	if err := <-started; err != nil {
		return err
	}
	p.proc = cmd.Process
	return nil
}

// waitReady polls /healthz until it answers 200, the process exits, or
// readyWait passes.
func (h *Host) waitReady() error {
	c := &http.Client{Timeout: probeTimeout}
	deadline := time.Now().Add(readyWait)
	for {
		resp, err := c.Get(h.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("thaw serve exited before it was ready")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thaw serve not ready after %v (last: %v)", readyWait, err)
		}
	}
}

// Running reports whether the process is alive.
func (h *process) Running() bool {
	if h.exited == nil {
		return false
	}
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// Log returns what the process (a host's: its `thaw serve` processes)
// wrote so far.
func (h *process) Log() string {
	b, err := os.ReadFile(h.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// Kill sends SIGKILL to host i's process and waits until it is gone (a
// no-op if none runs). The namespace and its address stay: connections to
// the port are refused.
func (nt *Net) Kill(i int) {
	nt.t.Helper()
	h := nt.Host(i)
	if err := h.kill(); err != nil {
		nt.t.Fatalf("testnet: host %d: %v", i, err)
	}
}

func (h *process) kill() error {
	if !h.Running() {
		return nil
	}
	_ = h.proc.Kill()
	select {
	case <-h.exited:
		return nil
	case <-time.After(exitWait):
		return fmt.Errorf("process %d not gone %v after SIGKILL", h.proc.Pid, exitWait)
	}
}

func (nt *Net) killAll() {
	for _, h := range nt.hosts {
		if err := h.kill(); err != nil {
			nt.t.Errorf("testnet: host %d: %v", h.Index, err)
		}
		for _, d := range h.daemons {
			if err := d.kill(); err != nil {
				nt.t.Errorf("testnet: host %d: %v", h.Index, err)
			}
		}
	}
}

// Partition cuts host i off the bridge (its veth down): nothing reaches it
// and it reaches nothing, while its processes keep running.
func (nt *Net) Partition(i int) {
	nt.t.Helper()
	if err := nt.run("partition", fmt.Sprint(nt.Host(i).Index)); err != nil {
		nt.t.Fatalf("testnet: %v", err)
	}
}

// Heal reconnects a partitioned host i.
func (nt *Net) Heal(i int) {
	nt.t.Helper()
	if err := nt.run("heal", fmt.Sprint(nt.Host(i).Index)); err != nil {
		nt.t.Fatalf("testnet: %v", err)
	}
}

// Command returns a command that runs name with args inside host i's
// namespace, bounded by ctx.
func (nt *Net) Command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	nt.t.Helper()
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nt.Host(i).Namespace, name}, args...)...)
}

// MinIO starts a private MinIO (internal/testminio) listening on the
// bridge address, reachable from every host, stopped at cleanup; it skips
// the test when THAW_TEST_MINIO_SCRIPT is not set.
func (nt *Net) MinIO() *testminio.Server {
	nt.t.Helper()
	return testminio.PrivateOn(nt.t, BridgeIP)
}
