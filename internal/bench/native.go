package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Native is the engine name of the floor `thaw bench engine` measures
// engines against: the function's Go handler compiled for the host and
// served through the SDK's own request decoding and response encoding.
const Native = "native"

// The native harness is two files added to a Go function's build with
// `go build -overlay`, so neither the function nor the SDK is edited and
// the SDK's public API does not grow for a benchmark:
//
//   - one in the SDK's package, which serves requests with the SDK's
//     buffers.handle: the code behind the thaw_alloc/thaw_handle exports of
//     a wasm build, down to the reused request and response buffers;
//   - one in the function's package main, whose init calls it. cmd/go hands
//     the compiler a package's files sorted by name, and init functions run
//     in that order, so a file named to sort last runs after the function's
//     own init has registered its handler (BuildNative refuses a package
//     with a file that would sort after it).
//
// The harness reads requests from fd 3 and writes responses to fd 4, not
// stdin and stdout, so that a handler printing to stdout cannot corrupt the
// stream. Each request is a little-endian uint32 length and the encoded
// request; each response a uint32 length, the uint64 nanoseconds the SDK
// took to serve it (decode, handler, encode), and the encoded response.
// The harness exits when fd 3 reaches end of file.
const (
	nativeSDKFile  = "zz_thaw_bench_native.go"
	nativeMainFile = "zzzz_thaw_bench_native.go"
)

const nativeSDKSource = `// Written by thaw bench engine (internal/bench/native.go); never on disk.

package thaw

import (
	"encoding/binary"
	"io"
	"os"
	"time"
)

// BenchServeNative serves requests from fd 3 on fd 4 with the handler the
// function registered, through the code behind the wasm exports.
func BenchServeNative() {
	in, out := os.NewFile(3, "requests"), os.NewFile(4, "responses")
	var b buffers
	var head [4]byte
	var msg []byte
	for {
		if _, err := io.ReadFull(in, head[:]); err != nil {
			os.Exit(0)
		}
		n := int(binary.LittleEndian.Uint32(head[:]))
		if _, err := io.ReadFull(in, b.alloc(n)); err != nil {
			os.Exit(1)
		}
		t0 := time.Now()
		resp := b.handle(handler, n, true)
		d := time.Since(t0)
		msg = binary.LittleEndian.AppendUint32(msg[:0], uint32(len(resp)))
		msg = binary.LittleEndian.AppendUint64(msg, uint64(d))
		msg = append(msg, resp...)
		if _, err := out.Write(msg); err != nil {
			os.Exit(1)
		}
	}
}
`

const nativeMainSource = `// Written by thaw bench engine (internal/bench/native.go); never on disk.

package main

import thaw "` + build.SDKModule + `"

// The last init of the package: the function's handler is registered.
func init() { thaw.BenchServeNative() }
`

// NativeSkip says why the function at dir has no native floor, or "" if it
// has one. A JavaScript function's handler is a script, not Go.
func NativeSkip(dir string) string {
	if build.JSScript(dir) != "" {
		return "a JavaScript function: its handler is a script, there is no native Go handler"
	}
	return ""
}

// BuildNative compiles the Go function in the package directory dir for
// this host, with the native harness, to the executable out; work holds
// the harness's generated files.
func BuildNative(ctx context.Context, dir, work, out string) error {
	if reason := NativeSkip(dir); reason != "" {
		return fmt.Errorf("build %s natively: %s: %w", dir, reason, errdefs.ErrInvalid)
	}
	gotool, err := build.GoTool()
	if err != nil {
		return err
	}
	if err := checkSortsLast(dir); err != nil {
		return err
	}
	sdk, err := goOutput(ctx, gotool, dir, "list", "-f", "{{.Dir}}", build.SDKModule)
	if err != nil {
		return fmt.Errorf("find the SDK of %s: %w", dir, err)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	sdkFile, mainFile := filepath.Join(work, "sdk.go"), filepath.Join(work, "main.go")
	overlay := filepath.Join(work, "overlay.json")
	ov, err := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(strings.TrimSpace(sdk), nativeSDKFile): sdkFile,
		filepath.Join(absDir, nativeMainFile):                mainFile,
	}})
	if err != nil {
		return err
	}
	for path, b := range map[string][]byte{sdkFile: []byte(nativeSDKSource), mainFile: []byte(nativeMainSource), overlay: ov} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if _, err := goOutput(ctx, gotool, dir, "build", "-overlay", overlay, "-o", absOut, "."); err != nil {
		return fmt.Errorf("build %s natively: %w", dir, err)
	}
	return nil
}

// checkSortsLast fails if a Go file of dir sorts after the harness's file
// in package main, whose init would then run after the harness took over.
func checkSortsLast(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if b := filepath.Base(n); b >= nativeMainFile {
			return fmt.Errorf("build %s natively: its file %s sorts after the harness's %s, so its init would not run first: %w", dir, b, nativeMainFile, errdefs.ErrInvalid)
		}
	}
	return nil
}

// goOutput runs the go command in dir for the host and returns its
// standard output; its output goes into the error on failure.
func goOutput(ctx context.Context, gotool, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, gotool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// nativeProcess is a running native harness: one process serving one
// request at a time, as an instance does.
type nativeProcess struct {
	cmd     *exec.Cmd
	req     *os.File // requests, the harness's fd 3
	resp    *os.File // responses, the harness's fd 4
	stderr  *engine.TailBuffer
	timeout time.Duration
	buf     []byte
}

// startNative starts the harness bin. Each call is bounded by timeout.
func startNative(bin string, timeout time.Duration) (*nativeProcess, error) {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, err
	}
	p := &nativeProcess{cmd: exec.Command(bin), req: reqW, resp: respR, stderr: &engine.TailBuffer{Max: 4 << 10}, timeout: timeout}
	p.cmd.ExtraFiles = []*os.File{reqR, respW}
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.stderr
	err = p.cmd.Start()
	// The child holds its own copies of its ends.
	reqR.Close()
	respW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return p, nil
}

// invoke sends req and returns the response and the time the harness took
// to serve it, plus the time this side took to encode the request and
// decode the response. A harness that does not answer within the timeout
// is killed and the call fails with errdefs.ErrTimeout.
func (p *nativeProcess) invoke(req *abi.Request) (resp *abi.Response, serve, codec time.Duration, err error) {
	if p.req == nil {
		return nil, 0, 0, fmt.Errorf("native harness has exited: %w", errdefs.ErrGuest)
	}
	t0 := time.Now()
	p.buf = binary.LittleEndian.AppendUint32(p.buf[:0], 0)
	p.buf = req.AppendTo(p.buf)
	binary.LittleEndian.PutUint32(p.buf, uint32(len(p.buf)-4))
	codec = time.Since(t0)
	deadline := time.Now().Add(p.timeout)
	_ = p.req.SetWriteDeadline(deadline)
	_ = p.resp.SetReadDeadline(deadline)
	if _, err := p.req.Write(p.buf); err != nil {
		return nil, 0, 0, p.fail("send the request", err)
	}
	var head [12]byte
	if _, err := io.ReadFull(p.resp, head[:]); err != nil {
		return nil, 0, 0, p.fail("read the response", err)
	}
	n := binary.LittleEndian.Uint32(head[:4])
	serve = time.Duration(binary.LittleEndian.Uint64(head[4:]))
	if cap(p.buf) < int(n) {
		p.buf = make([]byte, n)
	}
	out := p.buf[:n]
	if _, err := io.ReadFull(p.resp, out); err != nil {
		return nil, 0, 0, p.fail("read the response", err)
	}
	t1 := time.Now()
	resp, err = abi.DecodeResponse(out)
	codec += time.Since(t1)
	if err != nil {
		return nil, 0, 0, err
	}
	return resp, serve, codec, nil
}

// fail kills the harness after a failed exchange and says why it failed.
func (p *nativeProcess) fail(what string, err error) error {
	p.close()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("native harness: %s: no answer within %v: %w", what, p.timeout, errdefs.ErrTimeout)
	}
	if msg := strings.TrimSpace(p.stderr.Take()); msg != "" {
		return fmt.Errorf("native harness: %s: %v: %s: %w", what, err, msg, errdefs.ErrGuest)
	}
	return fmt.Errorf("native harness: %s: %v: %w", what, err, errdefs.ErrGuest)
}

// close ends the harness: end of file on its requests, then, if it has
// not exited within a second, a kill.
func (p *nativeProcess) close() {
	if p.req == nil {
		return
	}
	p.req.Close()
	p.resp.Close()
	p.req, p.resp = nil, nil
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
