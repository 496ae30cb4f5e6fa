package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// TestPublicSkipsFunctionLock holds a function's lock, as a long info()
// or pool operation does, and checks that Public still answers at once:
// the server decides unauthenticated requests with it.
func TestPublicSkipsFunctionLock(t *testing.T) {
	w := &Worker{fns: map[string]*function{}}
	priv := &function{w: w, rec: record{Name: "priv", Config: Config{MaxInstances: 1, MaxQueue: 1}},
		pool: newPool[*instance]("priv", 1, 1, nil), ckpt: &checkpointer{}}
	pub := &function{w: w, rec: record{Name: "pub", Config: Config{Public: true, MaxInstances: 1, MaxQueue: 1}},
		pool: newPool[*instance]("pub", 1, 1, nil), ckpt: &checkpointer{}}
	w.fns["priv"], w.fns["pub"] = priv, pub
	for _, f := range []*function{priv, pub} {
		f.ckpt.mu.Lock()
		f.pool.mu.Lock()
	}
	done := make(chan [3]bool, 1)
	go func() { done <- [3]bool{w.Public("priv"), w.Public("pub"), w.Public("nosuch")} }()
	select {
	case got := <-done:
		if got != [3]bool{false, true, false} {
			t.Errorf("Public(priv, pub, nosuch) = %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Public waited for the function's lock")
	}
	for _, f := range []*function{priv, pub} {
		f.ckpt.mu.Unlock()
		f.pool.mu.Unlock()
	}

	// Admit: room while the function is below max_instances, overloaded
	// once it is full and max_queue requests wait.
	if err := w.Admit("pub"); err != nil {
		t.Errorf("Admit with room: %v", err)
	}
	pub.pool.total, pub.pool.waiting = 1, 1
	if err := w.Admit("pub"); !errors.Is(err, errdefs.ErrOverloaded) {
		t.Errorf("Admit with a full queue: %v", err)
	}
	if err := w.Admit("nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Admit of a missing function: %v", err)
	}
}
