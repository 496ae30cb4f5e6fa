package worker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyFileCannotReachOtherFunctions: a policy.json whose pool names
// "../b/ID" (another function's snapshot) is refused when the worker
// loads it: a's pool stays empty, so a never restores b's memory and a's
// pruning can never delete b's snapshot.
func TestPolicyFileCannotReachOtherFunctions(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	w, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Policy: "fixed:1"}
	deploy(t, w, "a", "examples/hello", cfg)
	deploy(t, w, "b", "examples/hello", cfg)
	b, err := w.lookup("b")
	if err != nil {
		t.Fatal(err)
	}
	bSnap := b.ckpt.snap.Dir
	w.Close(ctx)

	rel, err := filepath.Rel(w.snapDir("a"), bSnap)
	if err != nil || !strings.HasPrefix(rel, "..") {
		t.Fatalf("relative path %q, %v", rel, err)
	}
	rec, _ := json.Marshal(policyRecord{Extra: []string{rel}})
	if err := os.WriteFile(filepath.Join(w.fnDir("a"), policyFile), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	w2, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(ctx)
	a, err := w2.lookup("a")
	if err != nil {
		t.Fatal(err)
	}
	a.ckpt.mu.Lock()
	extra := a.ckpt.extra
	a.ckpt.mu.Unlock()
	for _, s := range extra {
		t.Errorf("a's pool holds %s, outside a's snapshot directory", s.Dir)
	}
	if _, err := os.Stat(bSnap); err != nil {
		t.Fatalf("b's snapshot: %v", err)
	}
}
