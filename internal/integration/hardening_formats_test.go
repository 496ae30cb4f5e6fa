package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
)

// TestDamagedWorkingSetOverflow is issue 18 item 2 against the real
// `thaw serve`: a ws.json whose run end overflows
// ({"start":9223372036854775807,"count":1}) used to pass the bounds check;
// bulk then panicked on a slice bound in a goroutine (the worker exited) and
// reap panicked in the request's handler (net/http recovered it) and leaked
// the instance slot. Now the
// working set is refused as corrupt: every invocation is answered from a
// cold boot and counted as a fallback, the process stays up, and with
// max_instances=1 the second and third invocations prove the slot was
// released.
func TestDamagedWorkingSetOverflow(t *testing.T) {
	if !uffdAvailable() {
		t.Skip("bulk and reap restores need userfaultfd")
	}
	data := filepath.Join(t.TempDir(), "data")
	shareCache(t, data)
	p := startServe(t, data, token)
	defer p.Stop()
	// A bounded client: a leaked slot makes the next call wait in the
	// queue, which must show as a failure, not as a hung test.
	c := &api.Client{BaseURL: p.URL, Token: token, HTTP: &http.Client{Timeout: 45 * time.Second}}
	ctx := context.Background()
	for _, mode := range []api.Mode{api.ModeBulk, api.ModeReap} {
		t.Run(string(mode), func(t *testing.T) {
			name := "wsbad-" + string(mode)
			deploy(t, p, name, "examples/hello", api.Config{RestoreMode: mode, MaxInstances: 1, MaxQueue: 4})
			req := &api.InvokeRequest{Path: "/?name=ws", Mode: mode}
			// The first restore records the working set.
			first, err := c.Invoke(ctx, name, req)
			if err != nil || first.Status != 200 {
				t.Fatalf("first invoke: %v %+v", err, first)
			}
			for _, run := range overflowRuns {
				damageWorkingSet(t, data, name, run)
				before := fallbacks(t, p, name, mode)
				for i := range 3 {
					res, err := c.Invoke(ctx, name, req)
					if err != nil {
						t.Fatalf("run %s: invoke %d after damaging ws.json: %v\n%s", run, i+1, err, tail(p.Log()))
					}
					if res.Status != 200 || !bytes.Equal(res.Body, first.Body) {
						t.Fatalf("run %s: invoke %d: status %d body %q, want 200 %q", run, i+1, res.Status, res.Body, first.Body)
					}
					if fb := res.Header.Get(api.HeaderFallback); fb == "" || res.Start != "cold" {
						t.Fatalf("run %s: invoke %d: start %q, fallback %q: the damaged working set was used", run, i+1, res.Start, fb)
					}
				}
				if got := fallbacks(t, p, name, mode); got < before+3 {
					t.Errorf("run %s: thaw_restore_fallbacks_total{function=%q,mode=%q} = %v, want at least %v", run, name, mode, got, before+3)
				}
			}
			checkUp(t, p)
		})
	}
}

// overflowRuns are working-set runs whose end overflows: the start of
// issue 18 (bulk panicked on a slice bound), and a count whose page total,
// in bytes, wraps negative (reap panicked allocating its read buffer).
var overflowRuns = []string{
	`{"start":9223372036854775807,"count":1}`,
	`{"start":1,"count":9223372036854775807}`,
}

// damageWorkingSet replaces the working set of function name's snapshot by
// the one run given, with a one-page ws.img whose checksum matches, so that
// every check but the run bounds passes.
func damageWorkingSet(t *testing.T, data, name, run string) {
	t.Helper()
	metas, _ := filepath.Glob(filepath.Join(data, "snapshots", name, "*", snapshot.WSMetaFile))
	if len(metas) != 1 {
		t.Fatalf("want one recorded working set of %s, found %v", name, metas)
	}
	dir := filepath.Dir(metas[0])
	page := bytes.Repeat([]byte{0xa5}, snapshot.PageSize)
	sum := crc32.Checksum(page, crc32.MakeTable(crc32.Castagnoli))
	if err := os.WriteFile(filepath.Join(dir, snapshot.WSImageFile), page, 0o600); err != nil {
		t.Fatal(err)
	}
	pages := strings.TrimSuffix(run[strings.LastIndex(run, ":")+1:], "}")
	ws := fmt.Sprintf(`{"runs":[%s],"pages":%s,"crc":%d,"recorded":"2026-01-01T00:00:00Z"}`, run, pages, sum)
	if err := os.WriteFile(metas[0], []byte(ws), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fallbacks reads thaw_restore_fallbacks_total for name and mode.
func fallbacks(t *testing.T, p *proc, name string, mode api.Mode) float64 {
	t.Helper()
	_, _, body := raw(t, "GET", p.URL+"/metrics", token, nil, nil)
	re := regexp.MustCompile(`(?m)^thaw_restore_fallbacks_total\{function="` + regexp.QuoteMeta(name) + `",mode="` + string(mode) + `"\} (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

// TestServeRefusesReadableKeyFile: a store key file that group or others
// can read is refused at start (exit code 2, a message naming the file, its
// mode and the fix), not merely logged; the same file at 0600 starts.
func TestServeRefusesReadableKeyFile(t *testing.T) {
	dir := t.TempDir()
	secret, err := store.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "store.key")
	if err := os.WriteFile(key, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(thawBin, "serve", "--addr", "127.0.0.1:0", "--data", data,
		"--store-dir", filepath.Join(dir, "store"), "--key-file", key)
	cmd.Env = append(os.Environ(), "THAW_TOKEN=", store.EnvKey+"=")
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("thaw serve with a 0644 key file kept running")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("thaw serve with a 0644 key file: %v (want exit code 2)\n%s", err, out)
	}
	if msg := string(out); !strings.Contains(msg, key) || !strings.Contains(msg, "0644") || !strings.Contains(msg, "chmod 600") {
		t.Fatalf("message does not name the file, its mode and the fix:\n%s", msg)
	}

	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, data, token, "--store-dir", filepath.Join(dir, "store"), "--key-file", key)
	if err := p.Stop(); err != nil {
		t.Fatalf("thaw serve with a 0600 key file: %v\n%s", err, p.Log())
	}
}

// A snapshot image that something outside thaw truncates while an mmap
// instance maps it (thaw itself replaces images by rename). The instance's
// next call touches pages past the new end: they read as zeros instead of
// ending the worker with SIGBUS, the check after the call finds them, and
// the request is answered from a cold boot; a later restore refuses the
// short file and boots cold too. The worker keeps serving throughout.
func TestTruncatedImageWhileMapped(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	shareCache(t, data)
	p := startServe(t, data, token)
	defer p.Stop()
	const name = "truncated"
	deploy(t, p, name, "examples/hello", api.Config{RestoreMode: api.ModeMmap, MaxInstances: 1})
	// A restore forced in mmap mode takes the only slot (max_instances 1)
	// from the instance the deploy booted, and stays warm after its call.
	forced := &api.InvokeRequest{Path: "/?name=trunc", Mode: api.ModeMmap}
	first := invokeBounded(t, p, name, forced, nil)
	if start, _ := first.Metric("start"); start.Desc != "restore:mmap" {
		t.Fatalf("first invoke: start %q, want restore:mmap", start.Desc)
	}
	// Its idle call runs after the answer: truncate once it is idle.
	for deadline := time.Now().Add(answerBound); metric(t, p, "thaw_instances", `function="`+name+`"`, `state="idle"`) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the restored instance never became idle")
		}
	}
	imgs, _ := filepath.Glob(filepath.Join(data, "snapshots", name, "*", snapshot.ImageFile))
	if len(imgs) != 1 {
		t.Fatalf("want one memory image of %s, found %v", name, imgs)
	}
	fi, err := os.Stat(imgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(imgs[0], fi.Size()/8); err != nil {
		t.Fatal(err)
	}
	// The warm instance: its clean pages past the end were unmapped by the
	// truncation, and its call maps them again.
	warm := invokeBounded(t, p, name, &api.InvokeRequest{Path: "/?name=trunc"}, first.Body)
	fb := warm.Header.Get(api.HeaderFallback)
	if fb == "" || warm.Start != "cold" || !strings.Contains(fb, "shrank while mapped") {
		t.Fatalf("call on the instance that maps the truncated image: start %q, fallback %q; want a cold retry for the pages past the end", warm.Start, fb)
	}
	t.Logf("fallback: %s", fb)
	// A new restore: the short file is refused before it is mapped.
	res := invokeBounded(t, p, name, forced, first.Body)
	if fb := res.Header.Get(api.HeaderFallback); res.Start != "cold" || !strings.Contains(fb, "not the snapshot's") {
		t.Fatalf("restore from the truncated image: start %q, fallback %q; want cold, the short file refused", res.Start, fb)
	}
	checkUp(t, p)
}

// checkUp fails the test if p's thaw serve has exited or its /healthz does
// not answer 200.
func checkUp(t *testing.T, p *proc) {
	t.Helper()
	select {
	case err := <-p.done:
		t.Fatalf("thaw serve exited: %v\n%s", err, tail(p.Log()))
	default:
	}
	if status, _, _ := raw(t, "GET", p.URL+"/healthz", "", nil, nil); status != 200 {
		t.Fatalf("/healthz answered %d", status)
	}
}
