package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// fakeInstance is a pool element: the pool only asks whether an instance
// is dead and closes it.
type fakeInstance struct {
	id     int
	dead   bool
	closed bool
}

func (i *fakeInstance) Dead() bool                { return i.dead || i.closed }
func (i *fakeInstance) Close(ctx context.Context) { i.closed = true }

func newTestPool(max, maxQueue int) (*pool[*fakeInstance], prometheus.Gauge) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "idle"})
	return newPool[*fakeInstance]("fn", max, maxQueue, g), g
}

// checkCounts fails unless p has idle idle instances and total slots
// taken, and the gauge agrees.
func checkCounts(t *testing.T, p *pool[*fakeInstance], g prometheus.Gauge, idle, total int) {
	t.Helper()
	gotIdle, gotTotal := p.counts()
	if gotIdle != idle || gotTotal != total {
		t.Fatalf("%d idle of %d, want %d of %d", gotIdle, gotTotal, idle, total)
	}
	if n := testutil.ToFloat64(g); n != float64(idle) {
		t.Fatalf("idle gauge %v, want %d", n, idle)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// An instance put back is handed to the next request, most recently used
// first; a dead one is closed and frees its slot.
func TestInstancePoolReusesIdleInstances(t *testing.T) {
	p, g := newTestPool(2, 1)
	ctx := context.Background()
	var insts []*fakeInstance
	for i := range 2 {
		if _, ok, err := p.acquire(ctx, false); ok || err != nil {
			t.Fatalf("empty pool: instance %v, %v; want a slot", ok, err)
		}
		insts = append(insts, &fakeInstance{id: i})
	}
	for _, inst := range insts {
		if !p.put(inst, false) {
			t.Fatalf("instance %d not kept", inst.id)
		}
	}
	checkCounts(t, p, g, 2, 2)
	got, ok, err := p.acquire(ctx, false)
	if !ok || err != nil || got != insts[1] {
		t.Fatalf("acquire = %v, %v, %v; want the most recently used instance", got, ok, err)
	}
	checkCounts(t, p, g, 1, 2)
	got.dead = true
	if p.put(got, false) {
		t.Fatal("a dead instance went idle")
	}
	if !got.closed {
		t.Fatal("a dead instance was not closed")
	}
	checkCounts(t, p, g, 1, 1)
}

// A full pool queues at most maxQueue requests and refuses the next with
// ErrOverloaded; a queued request takes the instance put back, and one
// whose context ends leaves the queue.
func TestInstancePoolQueueBound(t *testing.T) {
	p, g := newTestPool(1, 1)
	ctx := context.Background()
	if _, ok, err := p.acquire(ctx, false); ok || err != nil {
		t.Fatal(ok, err)
	}
	got := make(chan *fakeInstance, 1)
	go func() {
		inst, ok, err := p.acquire(ctx, false)
		if !ok || err != nil {
			t.Errorf("queued request: %v, %v", ok, err)
		}
		got <- inst
	}()
	waitFor(t, "the request to queue", p.queued)
	if ok, waiting := p.admits(); ok || waiting != 1 {
		t.Fatalf("admits() = %v, %d with a full queue", ok, waiting)
	}
	if _, _, err := p.acquire(ctx, false); !errors.Is(err, errdefs.ErrOverloaded) {
		t.Fatalf("past the queue bound: %v, want ErrOverloaded", err)
	}
	inst := &fakeInstance{id: 1}
	p.put(inst, false)
	if g := <-got; g != inst {
		t.Fatalf("the queued request got %v", g)
	}
	checkCounts(t, p, g, 0, 1)

	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, _, err := p.acquire(cctx, false); errc <- err }()
	waitFor(t, "the request to queue", p.queued)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	if p.queued() {
		t.Fatal("a cancelled request is still queued")
	}
}

// A settling instance holds back one request, not all: the first request
// waits for it, a second starts another instance at once.
func TestAcquireWaitsForOneSettlingInstance(t *testing.T) {
	p, g := newTestPool(4, 4)
	ctx := context.Background()
	if _, ok, err := p.acquire(ctx, false); ok || err != nil {
		t.Fatal(ok, err)
	}
	p.beginSettle() // an instance that settles until released below

	first := make(chan error, 1)
	go func() {
		_, ok, err := p.acquire(ctx, false)
		if err == nil && ok {
			err = errors.New("got an instance, want a reserved slot")
		}
		first <- err
	}()
	waitFor(t, "the first request to wait for the settling instance", p.queued)
	ctx10, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, ok, err := p.acquire(ctx10, false); err != nil || ok {
		t.Fatalf("second request: %v, %v; want a slot for a new instance at once", ok, err)
	}
	select {
	case err := <-first:
		t.Fatalf("the first request stopped waiting before the instance settled (%v)", err)
	default:
	}
	p.free(true) // the settling instance goes away
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	p.free(false)
	p.free(false)
	checkCounts(t, p, g, 0, 0)
	p.mu.Lock()
	settling := p.settling
	p.mu.Unlock()
	if settling != 0 {
		t.Fatalf("%d settling after releasing every slot", settling)
	}
	p.beginSettle()
	done := make(chan struct{})
	go func() { p.awaitSettled(); close(done) }()
	select {
	case <-done:
		t.Fatal("awaitSettled returned while an instance settles")
	case <-time.After(10 * time.Millisecond):
	}
	p.free(true)
	<-done
}

// A fresh request starts a new instance even when an idle one exists, and
// at max_instances retires the oldest idle one to make room.
func TestInstancePoolFreshRetiresIdle(t *testing.T) {
	p, g := newTestPool(2, 1)
	ctx := context.Background()
	old, recent := &fakeInstance{id: 1}, &fakeInstance{id: 2}
	p.adopt(old)
	p.adopt(recent)
	checkCounts(t, p, g, 2, 2)
	if _, ok, err := p.acquire(ctx, true); ok || err != nil {
		t.Fatalf("fresh: %v, %v; want a slot", ok, err)
	}
	if !old.closed || recent.closed {
		t.Fatalf("closed: old %v, recent %v; want the oldest retired", old.closed, recent.closed)
	}
	checkCounts(t, p, g, 1, 2)
}

// Reaping closes instances idle past the keep-alive, oldest first, down to
// the floor; eviction closes the oldest above it; shutdown closes the rest
// and makes acquire fail, and an instance put back afterwards is closed.
func TestInstancePoolReapEvictShutdown(t *testing.T) {
	p, g := newTestPool(4, 1)
	ctx := context.Background()
	insts := []*fakeInstance{{id: 0}, {id: 1}, {id: 2}}
	for _, inst := range insts {
		p.adopt(inst)
	}
	if _, ok, err := p.acquire(ctx, false); !ok || err != nil { // busy: insts[2]
		t.Fatal(ok, err)
	}
	p.reap(ctx, time.Now().Add(time.Hour), time.Minute, 2)
	if !insts[0].closed || insts[1].closed {
		t.Fatalf("reap to 2 closed %v, %v; want only the oldest", insts[0].closed, insts[1].closed)
	}
	checkCounts(t, p, g, 1, 2)
	if _, ok := p.oldestIdle(2); ok {
		t.Fatal("oldestIdle offers an instance at the floor")
	}
	if p.evictOldest(2) {
		t.Fatal("evicted below the floor")
	}
	if _, ok := p.oldestIdle(1); !ok || !p.evictOldest(1) || !insts[1].closed {
		t.Fatal("did not evict the idle instance above the floor")
	}
	checkCounts(t, p, g, 0, 1)
	if n := p.holders(); n != 1 {
		t.Fatalf("%d holders, want the busy instance", n)
	}
	p.shutdown(ctx)
	if _, _, err := p.acquire(ctx, false); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("acquire after shutdown: %v", err)
	}
	if p.put(insts[2], false) || !insts[2].closed {
		t.Fatal("an instance put back after shutdown was kept")
	}
	checkCounts(t, p, g, 0, 0)
}

// Requests waiting for memory share the queue bound with those waiting
// for an instance, and hold no memory.
func TestInstancePoolMemoryQueue(t *testing.T) {
	p, _ := newTestPool(2, 2)
	ctx := context.Background()
	for range 2 {
		if _, ok, err := p.acquire(ctx, false); ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	for i := range 2 {
		if q, ok := p.joinMemoryQueue(); !ok || q != i {
			t.Fatalf("join %d: %d queued, %v", i, q, ok)
		}
	}
	if n := p.holders(); n != 0 {
		t.Fatalf("%d holders while both slots wait for memory", n)
	}
	if q, ok := p.joinMemoryQueue(); ok || q != 2 {
		t.Fatalf("past the bound: %d queued, %v", q, ok)
	}
	if _, _, err := p.acquire(ctx, false); !errors.Is(err, errdefs.ErrOverloaded) {
		t.Fatalf("acquire with the queue full of memory waiters: %v", err)
	}
	p.leaveMemoryQueue()
	if n := p.holders(); n != 1 {
		t.Fatalf("%d holders, want 1", n)
	}
}
