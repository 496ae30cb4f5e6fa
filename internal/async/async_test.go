package async

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testnats"
)

// open opens the queue of cfg over its own connection to s, as one worker
// would; the connection is returned so a test can cut it.
func open(t *testing.T, s *server.Server, cfg Config) (*Queue, *nats.Conn) {
	t.Helper()
	nc := testnats.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q, nc
}

// run starts a runner of q and stops it (bounded) when the test ends or
// when the returned stop is called.
func run(t *testing.T, q *Queue, cfg RunnerConfig) (r *Runner, stop func()) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	setDefault(&cfg.Poll, 100*time.Millisecond)
	setDefault(&cfg.DrainTimeout, time.Second)
	r, err := q.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("runner did not stop within 20s")
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// waitFinal polls the Result of id until it is final.
func waitFinal(t *testing.T, q *Queue, id string) *Result {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := q.Results.Get(context.Background(), id)
		if err == nil && res.State.Final() {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("invocation %s not final within 20s: %+v, %v", id, res, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func enqueue(t *testing.T, q *Queue, inv Invocation) string {
	t.Helper()
	if inv.Function == "" {
		inv.Function = "fn"
	}
	id, err := q.Enqueue(context.Background(), inv)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id
}

func TestEnqueueRunResult(t *testing.T) {
	s := testnats.Start(t)
	q, _ := open(t, s, Config{})
	res, err := q.Results.Get(context.Background(), "nope")
	if !errors.Is(err, errdefs.ErrNotFound) || res.State != StateUnknown {
		t.Fatalf("Get of an unknown id = %+v, %v; want StateUnknown and ErrNotFound", res, err)
	}
	id := enqueue(t, q, Invocation{Function: "echo", Method: "POST", Path: "/a/b", Query: "x=1",
		Header: http.Header{"X-Test": {"v"}}, Body: []byte("hello\x00binary")})
	if len(id) != 22 || ValidID(id) != nil {
		t.Fatalf("generated id %q: want 22 URL-safe characters", id)
	}
	if res, err := q.Results.Get(context.Background(), id); err != nil || res.State != StatePending {
		t.Fatalf("before any runner: %+v, %v; want pending", res, err)
	}
	var seen *Invocation
	run(t, q, RunnerConfig{Worker: "w1", Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		seen = inv
		return &Response{Status: 201, Header: http.Header{"X-Out": {"o"}}, Body: append([]byte("got "), inv.Body...)}, nil
	}})
	res = waitFinal(t, q, id)
	if res.State != StateDone || res.Status != 201 || string(res.Body) != "got hello\x00binary" || res.Header.Get("X-Out") != "o" ||
		res.Worker != "w1" || res.Attempts != 1 || res.Function != "echo" || res.Finished.Before(res.Started) || res.Truncated {
		t.Fatalf("result = %+v", res)
	}
	if seen.ID != id || seen.Method != "POST" || seen.Path != "/a/b" || seen.Query != "x=1" || seen.Header.Get("X-Test") != "v" ||
		seen.Attempt != 1 || seen.Enqueued.IsZero() {
		t.Fatalf("handler saw %+v", seen)
	}
}

// TestWorkerDies: the runner running an invocation loses its connection
// (a worker killed); after AckWait another runner runs it again, and the
// final Result is written once.
func TestWorkerDies(t *testing.T) {
	s := testnats.Start(t)
	cfg := Config{AckWait: time.Second}
	qa, nca := open(t, s, cfg)
	qb, _ := open(t, s, cfg)
	finals := watchFinals(t, s, cfg)

	started, release := make(chan struct{}), make(chan struct{})
	_, stopA := run(t, qa, RunnerConfig{Worker: "a", Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		close(started)
		<-release
		return &Response{Status: 200, Body: []byte("from a")}, nil
	}})
	id := enqueue(t, qa, Invocation{})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("runner a did not start the invocation")
	}
	nca.Close() // worker a is gone: no heartbeats, no ack
	var runsB atomic.Int32
	run(t, qb, RunnerConfig{Worker: "b", Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		runsB.Add(1)
		return &Response{Status: 200, Body: []byte(fmt.Sprintf("from b, attempt %d", inv.Attempt))}, nil
	}})
	res := waitFinal(t, qb, id)
	if res.State != StateDone || res.Worker != "b" || res.Attempts != 2 || string(res.Body) != "from b, attempt 2" {
		t.Fatalf("result = %+v; want done by b on attempt 2", res)
	}
	close(release) // a's handler returns late; its result cannot land
	stopA()
	if n := finals(); n != 1 || runsB.Load() != 1 {
		t.Fatalf("final results written %d times, b ran %d times; want 1 and 1", n, runsB.Load())
	}
}

// watchFinals counts the final Results written to the bucket of cfg; the
// returned func first waits until every write before its call was seen.
func watchFinals(t *testing.T, s *server.Server, cfg Config) func() int {
	t.Helper()
	q, _ := open(t, s, cfg)
	w, err := q.Results.kv.WatchAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	var mu sync.Mutex
	n := 0
	marks := make(chan string, 16)
	go func() {
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if strings.HasPrefix(e.Key(), "mark-") {
				marks <- e.Key()
				continue
			}
			if bytes.Contains(e.Value(), []byte(`"state":"done"`)) || bytes.Contains(e.Value(), []byte(`"state":"failed"`)) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}
	}()
	return func() int {
		mark := "mark-" + NewID()
		if _, err := q.Results.kv.Put(context.Background(), mark, nil); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case m := <-marks:
				if m != mark {
					continue
				}
				mu.Lock()
				defer mu.Unlock()
				return n
			case <-time.After(20 * time.Second):
				t.Fatal("watcher did not see its mark within 20s")
			}
		}
	}
}

func TestAttemptsExhausted(t *testing.T) {
	s := testnats.Start(t)
	q, _ := open(t, s, Config{MaxAttempts: 2, RetryDelay: 50 * time.Millisecond})
	var calls atomic.Int32
	r, _ := run(t, q, RunnerConfig{Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		calls.Add(1)
		return nil, fmt.Errorf("boom %d", inv.Attempt)
	}})
	res := waitFinal(t, q, enqueue(t, q, Invocation{}))
	if res.State != StateFailed || res.Attempts != 2 || res.Error != "boom 2" || calls.Load() != 2 {
		t.Fatalf("result = %+v after %d calls; want failed with the second error after 2", res, calls.Load())
	}
	if st := r.Stats(); st.Runs != 2 || st.Retried != 1 || st.Failed != 1 || st.Done != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestLostOnLastAttempt: the worker running the last allowed attempt dies;
// the next runner records the failure without running it.
func TestLostOnLastAttempt(t *testing.T) {
	s := testnats.Start(t)
	cfg := Config{MaxAttempts: 1, AckWait: time.Second}
	qa, nca := open(t, s, cfg)
	qb, _ := open(t, s, cfg)
	started := make(chan struct{})
	run(t, qa, RunnerConfig{Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	id := enqueue(t, qa, Invocation{})
	<-started
	nca.Close()
	var calls atomic.Int32
	run(t, qb, RunnerConfig{Worker: "b", Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		calls.Add(1)
		return &Response{}, nil
	}})
	res := waitFinal(t, qb, id)
	if res.State != StateFailed || !strings.Contains(res.Error, "gave up after 1 attempts: the worker running it was lost") || calls.Load() != 0 {
		t.Fatalf("result = %+v, b ran it %d times; want failed as lost, unrun", res, calls.Load())
	}
}

func TestLimits(t *testing.T) {
	s := testnats.Start(t)
	q, _ := open(t, s, Config{MaxBody: 1024, MaxQueued: 2})
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, Invocation{Function: "fn", Body: make([]byte, 1025)}); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("body over the limit: err = %v, want ErrTooLarge", err)
	}
	for _, id := range []string{"a/b", "a b", "ü", strings.Repeat("x", 65)} {
		if _, err := q.Enqueue(ctx, Invocation{Function: "fn", ID: id}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("id %q: err = %v, want ErrInvalid", id, err)
		}
	}
	if _, err := q.Enqueue(ctx, Invocation{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("no function: err = %v, want ErrInvalid", err)
	}
	enqueue(t, q, Invocation{Body: make([]byte, 1024)})
	enqueue(t, q, Invocation{})
	if _, err := q.Enqueue(ctx, Invocation{Function: "fn"}); !errors.Is(err, errdefs.ErrOverloaded) {
		t.Errorf("third invocation in a queue of 2: err = %v, want ErrOverloaded", err)
	}
	nc := testnats.Connect(t, s)
	js, _ := jetstream.New(nc)
	if _, err := Open(ctx, js, Config{MaxBody: int(nc.MaxPayload())}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("MaxBody of a whole message: err = %v, want ErrInvalid", err)
	}
}

func TestResultTruncated(t *testing.T) {
	s := testnats.Start(t)
	q, _ := open(t, s, Config{MaxResultBody: 10})
	run(t, q, RunnerConfig{Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		return &Response{Status: 200, Body: []byte("0123456789abcdef")}, nil
	}})
	res := waitFinal(t, q, enqueue(t, q, Invocation{}))
	if string(res.Body) != "0123456789" || !res.Truncated {
		t.Fatalf("result body %q, truncated %v; want the first 10 bytes, truncated", res.Body, res.Truncated)
	}
}

// TestIdempotentEnqueue: an id enqueued twice runs once, whether the
// second comes within the stream's duplicate window or after the result.
func TestIdempotentEnqueue(t *testing.T) {
	s := testnats.Start(t)
	q, _ := open(t, s, Config{Duplicates: 100 * time.Millisecond})
	ctx := context.Background()
	for range 2 {
		if id := enqueue(t, q, Invocation{ID: "key-1"}); id != "key-1" {
			t.Fatalf("Enqueue returned %q, want the client's id", id)
		}
	}
	var calls atomic.Int32
	run(t, q, RunnerConfig{Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
		calls.Add(1)
		return &Response{Status: 200}, nil
	}})
	waitFinal(t, q, "key-1")
	time.Sleep(150 * time.Millisecond) // past the duplicate window
	enqueue(t, q, Invocation{ID: "key-1"})
	st, err := q.js.Stream(ctx, q.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream still holds %d invocations", info.State.Msgs)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("invocation enqueued 3 times ran %d times, want 1", n)
	}
}

// TestConcurrency: a runner never runs more than MaxInFlight, nor more
// than its spare capacity, at once, and runs nothing while it has none.
func TestConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name  string
		max   int
		spare int64
	}{{"MaxInFlight", 3, 100}, {"Spare", 8, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			s := testnats.Start(t)
			q, _ := open(t, s, Config{})
			var now, peak, calls atomic.Int64
			var spare atomic.Int64 // none until the queue is full
			run(t, q, RunnerConfig{MaxInFlight: tc.max, Spare: func() int { return int(spare.Load()) },
				Handler: func(ctx context.Context, inv *Invocation) (*Response, error) {
					n := now.Add(1)
					defer now.Add(-1)
					calls.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(30 * time.Millisecond)
					return &Response{Status: 200}, nil
				}})
			var ids []string
			for range 12 {
				ids = append(ids, enqueue(t, q, Invocation{}))
			}
			time.Sleep(300 * time.Millisecond) // three polls with no spare capacity
			if n := calls.Load(); n != 0 {
				t.Fatalf("%d invocations ran with no spare capacity", n)
			}
			spare.Store(tc.spare)
			for _, id := range ids {
				if res := waitFinal(t, q, id); res.State != StateDone {
					t.Fatalf("result %+v", res)
				}
			}
			if p, want := peak.Load(), min(int64(tc.max), tc.spare); p > want {
				t.Fatalf("%d invocations ran at once, want at most %d", p, want)
			}
		})
	}
}

// TestHeartbeat: an invocation running longer than AckWait is not
// redelivered while its runner lives.
func TestHeartbeat(t *testing.T) {
	s := testnats.Start(t)
	cfg := Config{AckWait: time.Second}
	q, _ := open(t, s, cfg)
	q2, _ := open(t, s, cfg)
	var calls atomic.Int32
	h := func(ctx context.Context, inv *Invocation) (*Response, error) {
		calls.Add(1)
		time.Sleep(2500 * time.Millisecond)
		return &Response{Status: 200}, nil
	}
	run(t, q, RunnerConfig{Handler: h})
	run(t, q2, RunnerConfig{Handler: h})
	res := waitFinal(t, q, enqueue(t, q, Invocation{}))
	if res.Attempts != 1 || calls.Load() != 1 {
		t.Fatalf("result %+v after %d runs; want one run", res, calls.Load())
	}
}

// TestConcurrentFinish: of two runners finishing the same invocation,
// one writes the Result and the other changes nothing.
func TestConcurrentFinish(t *testing.T) {
	s := testnats.Start(t)
	q, _ := open(t, s, Config{})
	ctx := context.Background()
	id := enqueue(t, q, Invocation{})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = q.Results.update(ctx, id, func(*Result) *Result {
				return &Result{ID: id, State: StateDone, Worker: fmt.Sprint(i)}
			})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, errFinal):
			t.Fatalf("update: %v", err)
		}
	}
	res, err := q.Results.Get(ctx, id)
	if won != 1 || err != nil || errs[mustAtoi(t, res.Worker)] != nil {
		t.Fatalf("%d writers won (want 1); stored %+v, %v", won, res, err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func FuzzDecode(f *testing.F) {
	good, _ := encode(&Invocation{ID: "a", Function: "f", Body: []byte("b")})
	f.Add(good)
	f.Add([]byte{0, 0, 0, 9, '{'})
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := decode(data)
		if err == nil {
			again, err := encode(inv)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decode(again); err != nil {
				t.Fatalf("re-encoded invocation does not decode: %v", err)
			}
		}
	})
}

// A new id starts with a letter, never '-' (a command line would take it
// for a flag: `thaw result` failed on one in 64 ids), and is still 22
// URL-safe characters; ids differ.
func TestNewIDStartsWithLetter(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		id := NewID()
		c := id[0]
		if len(id) != 22 || !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') || ValidID(id) != nil || seen[id] {
			t.Fatalf("id %q: want 22 characters, a letter first, valid, new", id)
		}
		seen[id] = true
	}
}
