package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// sleepCfg gives guests a short deadline; a guest sleeping in the host
// must be stopped by it.
var sleepCfg = InstanceConfig{MemoryLimit: 128 << 20, Timeout: time.Second, InitTimeout: time.Second}

// stopped runs call and fails the test unless it returns a timeout error
// well before a sleep of 2^63 ns would have ended: 20 s is the slack for a
// slow machine, not a performance bound.
func stopped(t *testing.T, what string, call func() error) {
	t.Helper()
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- call() }()
	select {
	case err := <-done:
		if !errors.Is(err, errdefs.ErrTimeout) {
			t.Fatalf("%s: %v, want ErrTimeout", what, err)
		}
		t.Logf("%s: stopped after %v: %v", what, time.Since(t0).Round(time.Millisecond), err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: still sleeping 20 s after a 1 s deadline", what)
	}
}

func bootFaulty(t *testing.T) (*Module, *Instance) {
	t.Helper()
	m, err := newEngine(t).Compile(context.Background(), testwasm.Build(t, "examples/faulty"))
	if err != nil {
		t.Fatal(err)
	}
	inst, _, err := m.Boot(context.Background(), sleepCfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, inst
}

// checkServes boots a new instance of m and checks it answers: a guest
// killed in its sleep leaves the module usable.
func checkServes(t *testing.T, m *Module) {
	t.Helper()
	ctx := context.Background()
	inst, _, err := m.Boot(ctx, sleepCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	resp, err := inst.Invoke(ctx, get("/ok", ""))
	if err != nil || string(resp.Body) != "ok\n" {
		t.Fatalf("a new instance answered %+v, %v", resp, err)
	}
}

// A handler sleeping in WASI poll_oneoff (Go's time.Sleep) is stopped at
// the invocation's deadline and the instance is dead.
func TestSleepInHandlerTimesOut(t *testing.T) {
	ctx := context.Background()
	m, inst := bootFaulty(t)
	defer inst.Close(ctx)
	stopped(t, "handler", func() error { _, err := inst.Invoke(ctx, get("/sleep", "")); return err })
	if !inst.Dead() {
		t.Fatal("the instance serves on after its deadline")
	}
	checkServes(t, m)
}

// The same in the idle call between requests.
func TestSleepInIdleTimesOut(t *testing.T) {
	ctx := context.Background()
	m, inst := bootFaulty(t)
	defer inst.Close(ctx)
	if _, err := inst.Invoke(ctx, get("/sleep-idle", "")); err != nil {
		t.Fatal(err)
	}
	stopped(t, "idle", func() error { _, err := inst.Idle(ctx); return err })
	if !inst.Dead() {
		t.Fatal("the instance serves on after its idle call overran")
	}
	checkServes(t, m)
}

// The same in the restore hook (thaw_on_restore): Restore fails with a
// timeout and releases the region.
func TestSleepInRestoreHookTimesOut(t *testing.T) {
	ctx := context.Background()
	m, inst := bootFaulty(t)
	defer inst.Close(ctx)
	if _, err := inst.Invoke(ctx, get("/sleep-restore", "")); err != nil {
		t.Fatal(err)
	}
	st, mem := inst.Capture()
	region, err := NewRegion(sleepCfg.MemoryLimit)
	if err != nil {
		t.Fatal(err)
	}
	copy(region.Bytes(), mem)
	var freed bool
	region.OnFree(func() { freed = true })
	stopped(t, "restore hook", func() error {
		r, err := m.Restore(ctx, sleepCfg, st, region)
		if err == nil {
			r.Close(ctx)
		}
		return err
	})
	if !freed {
		t.Fatal("the failed restore kept its region")
	}
	checkServes(t, m)
}

// The same in _initialize, under the init timeout.
func TestSleepInInitialiseTimesOut(t *testing.T) {
	m, err := newEngine(t).Compile(context.Background(), testwasm.Build(t, "internal/engine/testdata/sleepinit"))
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, "_initialize", func() error {
		inst, _, err := m.Boot(context.Background(), sleepCfg)
		if err == nil {
			inst.Close(context.Background())
		}
		return err
	})
}
