package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// token is the management token of the shared server.
const token = "integration-token"

var (
	thawBin string // the thaw binary built once by TestMain
	tmpRoot string
)

func TestMain(m *testing.M) {
	pager.RunIfChild(stack.OpenReaderJSON)
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "thaw-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	tmpRoot = dir
	thawBin = filepath.Join(dir, "thaw")
	cmd := exec.Command("go", "build", "-o", thawBin, "./cmd/thaw")
	cmd.Dir = testwasm.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build thaw: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	stopShared()
	return code
}

// proc is a running `thaw serve`.
type proc struct {
	URL  string
	Data string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan error
}

var listenRE = regexp.MustCompile(`msg=listening url=(http://\S+)`)

// startServe runs `thaw serve` on a free loopback port and waits until it
// reports its address. Extra flags are appended.
func startServe(t testing.TB, dataDir, tok string, extra ...string) *proc {
	t.Helper()
	return startServeBin(t, thawBin, dataDir, tok, extra...)
}

// startServeBin is startServe with the thaw binary bin.
func startServeBin(t testing.TB, bin, dataDir, tok string, extra ...string) *proc {
	t.Helper()
	return startThaw(t, bin, dataDir, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dataDir, "--token", tok}, extra...)...)
}

// startThaw runs bin with args (a command that logs msg=listening
// url=URL: serve, gateway) and waits until it reports its address.
func startThaw(t testing.TB, bin, dataDir string, args ...string) *proc {
	t.Helper()
	p := &proc{Data: dataDir, cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "THAW_TOKEN=")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		p.done <- p.cmd.Wait()
	}()
	select {
	case p.URL = <-urls:
	case err := <-p.done:
		t.Fatalf("thaw %s exited before listening: %v\n%s", args[0], err, p.Log())
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("thaw %s did not report its address\n%s", args[0], p.Log())
	}
	return p
}

// Log returns what the server logged so far.
func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Stop sends SIGTERM and returns the exit error (nil for a clean,
// graceful shutdown).
func (p *proc) Stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("thaw serve ignored SIGTERM for 60s")
	}
}

var (
	sharedOnce sync.Once
	sharedProc *proc
)

// shared returns the server most tests share: one data directory, the
// management token set. If it fails to start, the first test reports why
// and the others fail fast.
func shared(t testing.TB) *proc {
	t.Helper()
	// A Fatal inside Do still marks it done (Goexit runs its defers).
	sharedOnce.Do(func() { sharedProc = startServe(t, filepath.Join(tmpRoot, "shared-data"), token) })
	if sharedProc == nil {
		t.Fatal("the shared server failed to start (see the first failing test)")
	}
	return sharedProc
}

func stopShared() {
	if sharedProc != nil {
		if err := sharedProc.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "shared server: %v\n%s", err, sharedProc.Log())
		}
	}
}

// shareCache points a new data directory's compilation cache at the shared
// server's, so a second server does not compile the same modules again.
func shareCache(t testing.TB, dataDir string) {
	t.Helper()
	cache := filepath.Join(tmpRoot, "shared-data", "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cache, filepath.Join(dataDir, "cache")); err != nil {
		t.Fatal(err)
	}
}

func client(p *proc, tok string) *api.Client {
	return &api.Client{BaseURL: p.URL, Token: tok, HTTP: &http.Client{Timeout: 2 * time.Minute}}
}

// cli runs the thaw binary against p and returns its exit code and output.
func cli(t testing.TB, p *proc, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, thawBin, args...)
	cmd.Env = append(os.Environ(), "THAW_SERVER="+p.URL, "THAW_TOKEN="+token)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run thaw %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

// module returns the example's wasm, written to a file for the CLI.
func module(t testing.TB, pkg string) (wasm []byte, path string) {
	t.Helper()
	wasm = testwasm.Build(t, pkg)
	path = filepath.Join(tmpRoot, strings.ReplaceAll(pkg, "/", "_")+".wasm")
	if _, err := os.Stat(path); err != nil {
		if err := os.WriteFile(path, wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return wasm, path
}

// raw sends one HTTP request with the shared token unless tok says
// otherwise, and returns status, headers and body.
func raw(t testing.TB, method, url, tok string, body io.Reader, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
