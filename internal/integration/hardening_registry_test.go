package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/crashpoint"
	"github.com/thaw-run/thaw/internal/store"
)

// The two versions the registry tests deploy under one name: their
// answers to GET / tell them apart, and each one's memory image is
// meaningless to the other's code.
var registryVersions = []struct{ pkg, want string }{
	{"examples/hello", "hello, crash (GET /)\n"},
	{"examples/jsontransform", ""}, // GET answers 405
}

// versionOf returns the index in registryVersions of the module with
// hash sha, or -1.
func versionOf(t *testing.T, sha string) int {
	t.Helper()
	for i, v := range registryVersions {
		if info, _ := moduleSHA(t, v.pkg); info == sha {
			return i
		}
	}
	return -1
}

func moduleSHA(t *testing.T, pkg string) (string, []byte) {
	t.Helper()
	wasm, _ := module(t, pkg)
	return sha256Hex(wasm), wasm
}

// checkServes asserts that the function name on p is deployed as one of
// registryVersions (want, if want >= 0) and that invoking it answers as
// that version does, twice (a fresh instance and then as it comes).
func checkServes(t *testing.T, p *proc, name string, want int) {
	t.Helper()
	info, err := client(p, token).Get(context.Background(), name)
	if err != nil {
		t.Fatalf("get %s after restart: %v\n%s", name, err, p.Log())
	}
	v := versionOf(t, info.ModuleSHA)
	if v < 0 || (want >= 0 && v != want) {
		t.Fatalf("%s is module %.12s (version %d), want version %d\n%s", name, info.ModuleSHA, v, want, p.Log())
	}
	for i := 0; i < 2; i++ {
		res, err := client(p, token).Invoke(context.Background(), name, &api.InvokeRequest{Path: "/?name=crash"})
		if err != nil {
			t.Fatalf("invoke %s: %v\n%s", name, err, p.Log())
		}
		ok := res.Status == http.StatusOK && string(res.Body) == registryVersions[v].want
		if registryVersions[v].want == "" {
			ok = res.Status == http.StatusMethodNotAllowed && res.Header.Get(api.HeaderError) == ""
		}
		if !ok {
			t.Fatalf("%s is version %d (%s) but invocation %d answered %d %q (start %s, fallback %q)\n%s", name, v,
				registryVersions[v].pkg, i, res.Status, res.Body, res.Start, res.Header.Get("X-Thaw-Fallback"), p.Log())
		}
	}
}

// checkClean asserts that the data directory holds no temporary files,
// no snapshot that neither a record nor a policy pool references, and no
// module no record references.
func checkClean(t *testing.T, dataDir string) {
	t.Helper()
	var tmps []string
	_ = filepath.Walk(dataDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dataDir, path)
		// The caches, the store's queue and the embedded NATS server's
		// state (its own files, written and recovered by nats-server) are
		// not thaw's registry.
		if strings.HasPrefix(rel, "cache") || strings.HasPrefix(rel, "store") || strings.HasPrefix(rel, "nats") {
			if fi.IsDir() && rel != "." {
				return filepath.SkipDir
			}
		}
		if strings.Contains(fi.Name(), ".tmp") {
			tmps = append(tmps, rel)
		}
		return nil
	})
	if len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	refSnaps, refMods := map[string]bool{}, map[string]bool{}
	fns, _ := os.ReadDir(filepath.Join(dataDir, "functions"))
	for _, fn := range fns {
		b, err := os.ReadFile(filepath.Join(dataDir, "functions", fn.Name(), "function.json"))
		if err != nil {
			t.Errorf("function dir %s without a readable record: %v", fn.Name(), err)
			continue
		}
		var rec struct {
			Snapshot  string `json:"snapshot"`
			ModuleSHA string `json:"module_sha256"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		refMods[rec.ModuleSHA+".wasm"] = true
		refSnaps[fn.Name()+"/"+rec.Snapshot] = true
		var pol struct{ Extra []string }
		if b, err := os.ReadFile(filepath.Join(dataDir, "functions", fn.Name(), "policy.json")); err == nil {
			_ = json.Unmarshal(b, &pol)
		}
		for _, id := range pol.Extra {
			refSnaps[fn.Name()+"/"+id] = true
		}
	}
	mods, _ := os.ReadDir(filepath.Join(dataDir, "modules"))
	for _, m := range mods {
		if !refMods[m.Name()] {
			t.Errorf("unreferenced module %s left", m.Name())
		}
	}
	names, _ := os.ReadDir(filepath.Join(dataDir, "snapshots"))
	for _, n := range names {
		ids, _ := os.ReadDir(filepath.Join(dataDir, "snapshots", n.Name()))
		for _, id := range ids {
			if !refSnaps[n.Name()+"/"+id.Name()] {
				t.Errorf("orphaned snapshot %s/%s left", n.Name(), id.Name())
			}
		}
	}
}

// startArmed starts thaw serve with crash point point armed ("": none).
func startArmed(t *testing.T, dataDir, point string, extra ...string) *proc {
	t.Helper()
	t.Setenv(crashpoint.EnvVar, point)
	defer os.Setenv(crashpoint.EnvVar, "")
	return startServe(t, dataDir, token, extra...)
}

// awaitKilled waits until p died of SIGKILL.
func awaitKilled(t *testing.T, p *proc, why string) {
	t.Helper()
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s: thaw serve exited with %v, want SIGKILL\n%s", why, err, p.Log())
		}
	case <-time.After(90 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("%s: the crash point was not reached in 90 s\n%s", why, p.Log())
	}
}

// TestCrashPoints kills the real thaw serve at every step of deploy,
// checkpoint and store publication (THAW_CRASHPOINT) and checks that the
// restarted worker serves the old or the new version consistently, never
// one's memory with the other's code, loses no acknowledged deploy, and
// leaves no temporary file, orphaned snapshot or unreferenced module.
func TestCrashPoints(t *testing.T) {
	for i := range registryVersions {
		moduleSHA(t, registryVersions[i].pkg) // build both first
	}
	key, err := store.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(store.EnvKey, key)
	for _, point := range crashpoint.All {
		t.Run(point, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "data")
			shareCache(t, dir)
			storeArgs := []string{"--store-dir", filepath.Join(root, "store")}
			cfg := api.Config{}
			if strings.HasPrefix(point, "checkpoint.") {
				cfg.Policy = "fixed:1"
			}
			p := startArmed(t, dir, "", storeArgs...)
			_, v1 := moduleSHA(t, registryVersions[0].pkg)
			if _, err := client(p, token).Deploy(context.Background(), "fn", v1, cfg); err != nil {
				t.Fatalf("deploy v1: %v", err)
			}
			if err := p.Stop(); err != nil {
				t.Fatalf("stop: %v\n%s", err, p.Log())
			}

			p = startArmed(t, dir, point, storeArgs...)
			want := -1 // either version
			if strings.HasPrefix(point, "checkpoint.") {
				// The checkpoint after request 1 is taken off the
				// request's path: the answer comes, then the crash.
				invoke(t, p, "fn", &api.InvokeRequest{Path: "/?name=crash"})
				want = 0
			} else {
				_, v2 := moduleSHA(t, registryVersions[1].pkg)
				if _, err := client(p, token).Deploy(context.Background(), "fn", v2, cfg); err == nil {
					want = 1 // acknowledged: it must survive
				}
			}
			awaitKilled(t, p, point)

			p = startArmed(t, dir, "", storeArgs...)
			defer p.Stop()
			// The start has collected what the crash left; checked
			// before invoking, whose checkpoint may be being written.
			checkClean(t, dir)
			checkServes(t, p, "fn", want)
			if t.Failed() {
				t.Log(p.Log())
			}
		})
	}
}

// TestAcknowledgedDeploySurvivesKill: a deploy answered 200 survives a
// SIGKILL right after the answer.
func TestAcknowledgedDeploySurvivesKill(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startArmed(t, dir, "")
	for i := range registryVersions {
		deploy(t, p, "acked", registryVersions[i].pkg, api.Config{})
	}
	_ = p.cmd.Process.Kill()
	awaitKilled(t, p, "kill")
	p = startArmed(t, dir, "")
	defer p.Stop()
	checkServes(t, p, "acked", 1)
	checkClean(t, dir)
}

// TestConcurrentDeploysOfOneName: concurrent deploys of one name all
// succeed, one after the other, and leave one consistent version, with
// its snapshot, and no temporary file or orphaned snapshot, before and
// after a restart.
func TestConcurrentDeploysOfOneName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startArmed(t, dir, "")
	wasms := make([][]byte, len(registryVersions))
	for i := range registryVersions {
		_, wasms[i] = moduleSHA(t, registryVersions[i].pkg)
	}
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = client(p, token).Deploy(context.Background(), "conc", wasms[i%2], api.Config{})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("deploy %d: %v", i, err)
		}
	}
	info, err := client(p, token).Get(context.Background(), "conc")
	if err != nil || info.Snapshot == nil {
		t.Fatalf("get: %+v, %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", "conc", info.Snapshot.ID, "meta.json")); err != nil {
		t.Errorf("the current snapshot is gone: %v", err)
	}
	checkServes(t, p, "conc", -1)
	checkClean(t, dir)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	p = startArmed(t, dir, "")
	defer p.Stop()
	checkServes(t, p, "conc", versionOf(t, info.ModuleSHA))
	res, err := client(p, token).Invoke(context.Background(), "conc", &api.InvokeRequest{Path: "/?name=crash", Mode: "eager"})
	if err != nil || res.Start != "restore" || res.Header.Get("X-Thaw-Fallback") != "" {
		t.Errorf("restore after restart: %+v, %v", res, err)
	}
	checkClean(t, dir)
}

// TestSnapshotOfAnotherModuleNeverRestored: a snapshot whose recorded
// module is not the function's module (here: another function's snapshot
// put in its place) is discarded, counted, and the function boots cold
// and answers as itself.
func TestSnapshotOfAnotherModuleNeverRestored(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startArmed(t, dir, "")
	a := deploy(t, p, "a", registryVersions[0].pkg, api.Config{})
	b := deploy(t, p, "b", registryVersions[1].pkg, api.Config{})
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	aDir := filepath.Join(dir, "snapshots", "a", a.Snapshot.ID)
	if err := os.RemoveAll(aDir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, "snapshots", "b", b.Snapshot.ID), aDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	meta, err := os.ReadFile(filepath.Join(aDir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	meta = []byte(strings.ReplaceAll(string(meta), b.Snapshot.ID, a.Snapshot.ID))
	meta = []byte(strings.ReplaceAll(string(meta), `"function": "b"`, `"function": "a"`))
	if err := os.WriteFile(filepath.Join(aDir, "meta.json"), meta, 0o600); err != nil {
		t.Fatal(err)
	}
	p = startArmed(t, dir, "")
	defer p.Stop()
	checkServes(t, p, "a", 0)
	checkServes(t, p, "b", 1)
	code, _, body := raw(t, "GET", p.URL+"/metrics", token, nil, nil)
	want := `thaw_snapshots_discarded_total{function="a",reason="module_mismatch"} 1`
	if code != http.StatusOK || !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q", want)
	}
	if _, err := os.Stat(aDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mismatched snapshot was kept: %v", err)
	}
}

// TestOldLayoutLoads: a data directory of the layout before
// content-addressed modules (functions/NAME/module.wasm) loads, serves from
// its snapshot, and is migrated to modules/SHA.wasm.
func TestOldLayoutLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startArmed(t, dir, "")
	info := deploy(t, p, "old", registryVersions[0].pkg, api.Config{})
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	// Back to the old layout.
	mod := filepath.Join(dir, "modules", info.ModuleSHA+".wasm")
	if err := os.Rename(mod, filepath.Join(dir, "functions", "old", "module.wasm")); err != nil {
		t.Fatal(err)
	}
	p = startArmed(t, dir, "")
	defer p.Stop()
	checkServes(t, p, "old", 0)
	res := invoke(t, p, "old", &api.InvokeRequest{Path: "/?name=crash", Mode: "eager"})
	if res.Start != "restore" {
		t.Errorf("old layout: start %s, fallback %q", res.Start, res.Header.Get("X-Thaw-Fallback"))
	}
	if _, err := os.Stat(mod); err != nil {
		t.Errorf("not migrated: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "functions", "old", "module.wasm")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old module file kept: %v", err)
	}
	checkClean(t, dir)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// nonNumericFields are the configuration fields whose values are not
// numbers.
var nonNumericFields = map[string]bool{"public": true, "restore_mode": true, "policy": true, "engine": true}

// TestConfigValuesRejected: NaN, infinities, negative and huge values of
// every numeric configuration field answer 400 over HTTP (query parameter
// and, where JSON can carry them, the config header) and make `thaw
// deploy` exit 2; a deploy setting every field as a query parameter is
// accepted. The fields come from api.Fields, the one definition.
func TestConfigValuesRejected(t *testing.T) {
	p := shared(t)
	wasm, path := module(t, "examples/hello")
	bad := []string{"NaN", "Inf", "-Inf", "-1", "1e30", "99999999999999999999"}
	for _, f := range api.Fields {
		if nonNumericFields[f.Name] {
			continue
		}
		for _, v := range bad {
			u := p.URL + "/v1/functions/badcfg?" + url.Values{f.Name: {v}}.Encode()
			code, hdr, body := raw(t, "PUT", u, token, bytes.NewReader(wasm), map[string]string{"Content-Type": "application/wasm"})
			if code != http.StatusBadRequest || hdr.Get(api.HeaderError) != "invalid" {
				t.Errorf("query %s=%s: %d %s", f.Name, v, code, body)
			}
			if code, _, stderr := cli(t, p, "deploy", "badcfg", path, "--"+f.Flag, v); code != 2 {
				t.Errorf("thaw deploy --%s %s: exit %d (%s)", f.Flag, v, code, stderr)
			}
		}
		for _, v := range []string{"-1", "1e30", "-1e300"} {
			hdr := map[string]string{"Content-Type": "application/wasm", api.HeaderConfig: `{"` + f.Name + `": ` + v + `}`}
			code, _, body := raw(t, "PUT", p.URL+"/v1/functions/badcfg", token, bytes.NewReader(wasm), hdr)
			if code != http.StatusBadRequest {
				t.Errorf("JSON %s=%s: %d %s", f.Name, v, code, body)
			}
		}
	}
	if code, _, _ := raw(t, "GET", p.URL+"/v1/functions/badcfg", token, nil, nil); code != http.StatusNotFound {
		t.Errorf("a rejected deploy left a function: %d", code)
	}
	// Every field as a query parameter, at once.
	q := url.Values{"memory_mib": {"64"}, "timeout": {"2s"}, "init_timeout": {"90"}, "min_instances": {"0"},
		"max_instances": {"3"}, "max_queue": {"5"}, "keep_alive": {"10s"}, "public": {"true"}, "restore_mode": {"eager"},
		"policy": {"fixed:2"}, "pool_size": {"4"}, "rerecord_miss_rate": {"0.5"}, "engine": {"wazero"}, "idempotent": {"true"}}
	for _, f := range api.Fields {
		if _, ok := q[f.Name]; !ok {
			t.Fatalf("field %s missing from this test's query", f.Name)
		}
	}
	code, _, body := raw(t, "PUT", p.URL+"/v1/functions/allcfg?"+q.Encode(), token, bytes.NewReader(wasm), map[string]string{"Content-Type": "application/wasm"})
	if code != http.StatusOK {
		t.Fatalf("deploy with every field: %d %s", code, body)
	}
	var info api.FunctionInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.InitTimeout != api.Duration(90*time.Second) || c.Policy != "fixed:2" || c.PoolSize != 4 || c.RerecordMissRate != 0.5 || c.MaxQueue != 5 || !c.Idempotent {
		t.Errorf("deployed config %+v", c)
	}
}
