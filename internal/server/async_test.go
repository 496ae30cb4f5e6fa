package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/async"
	"github.com/thaw-run/thaw/internal/coord"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/worker"
)

// startAsync serves a clustered worker (a cluster of one, NATS embedded)
// with a token, examples/faulty deployed as the private "slow" and the
// public "open".
func startAsync(t *testing.T, budgetMiB int) (*Running, *api.Client) {
	t.Helper()
	ctx := context.Background()
	rs, err := Start(ctx, RunOptions{Addr: "127.0.0.1:0", Worker: worker.Options{DataDir: t.TempDir(), NoPager: true, MemoryBudgetMiB: budgetMiB},
		Server:  Options{Token: "tok"},
		Cluster: &coord.Options{Async: async.Config{RetryDelay: 50 * time.Millisecond, AckWait: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close(10 * time.Second) })
	c := &api.Client{BaseURL: rs.URL, Token: "tok"}
	wasm := testwasm.Build(t, "examples/faulty")
	if _, err := c.Deploy(ctx, "slow", wasm, api.Config{MemoryMiB: 256}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(ctx, "open", wasm, api.Config{MemoryMiB: 256, Public: true}); err != nil {
		t.Fatal(err)
	}
	return rs, c
}

// TestAsync runs the asynchronous routes' tests against one worker with
// two 256 MiB slots.
func TestAsync(t *testing.T) {
	rs, c := startAsync(t, 512)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *Running, *api.Client)
	}{
		{"InvokeAndResult", testAsyncInvokeAndResult},
		{"Errors", testAsyncErrors},
		{"Failure", testAsyncFailure},
		{"YieldsToSynchronous", testAsyncYieldsToSynchronous},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, rs, c) })
	}
}

func wait(t *testing.T, c *api.Client, id string) *api.AsyncResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.WaitAsync(ctx, id, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("result %s: %v", id, err)
	}
	return res
}

// An asynchronous invocation is answered 202 with its id and Location at
// once, runs (path and query reach the function), and its result (status,
// body, worker, attempts, timings) is kept; an idempotency key names the
// invocation, and enqueueing it again does not run it again.
func testAsyncInvokeAndResult(t *testing.T, rs *Running, c *api.Client) {
	ctx := context.Background()
	req, _ := http.NewRequest(http.MethodPost, rs.URL+"/async/fn/slow/spin?ms=300", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/async/results/") {
		t.Fatalf("POST /async/fn/slow: %d, Location %q", resp.StatusCode, loc)
	}
	id := strings.TrimPrefix(loc, "/async/results/")
	res := wait(t, c, id)
	if res.State != api.AsyncDone || res.Status != 200 || string(res.Body) != "spun\n" || res.Worker != rs.Coordinator.ID() || res.Attempts != 1 || res.Function != "slow" {
		t.Fatalf("result: %+v (body %q)", res, res.Body)
	}
	if res.Finished.Sub(res.Started) < 300*time.Millisecond {
		t.Errorf("ran %s, the function spins 300ms", res.Finished.Sub(res.Started))
	}

	acc, err := c.InvokeAsync(ctx, "slow", &api.InvokeRequest{Path: "/spin?ms=1"}, "job-1")
	if err != nil || acc.ID != "job-1" || acc.Location != "/async/results/job-1" {
		t.Fatalf("with a key: %+v, %v", acc, err)
	}
	first := wait(t, c, "job-1")
	again, err := c.InvokeAsync(ctx, "slow", &api.InvokeRequest{Path: "/spin?ms=1"}, "job-1")
	if err != nil || again.ID != "job-1" {
		t.Fatalf("the same key again: %+v, %v", again, err)
	}
	time.Sleep(300 * time.Millisecond)
	if res := wait(t, c, "job-1"); res.Attempts != 1 || !res.Finished.Equal(first.Finished) {
		t.Fatalf("the same key ran again: %+v, first %+v", res, first)
	}
}

// The errors of the asynchronous routes: unknown function 404, bad key
// 400, the experiment headers 400, a body past the queue's limit 413,
// an unknown id 404; without the token, private functions and their
// results answer 401 (unknown ids too), public ones are served.
func testAsyncErrors(t *testing.T, rs *Running, c *api.Client) {
	ctx := context.Background()
	anon := &api.Client{BaseURL: rs.URL}
	check := func(what string, err error, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err := c.InvokeAsync(ctx, "nosuch", &api.InvokeRequest{}, "")
	check("unknown function", err, errdefs.ErrNotFound)
	_, err = c.InvokeAsync(ctx, "slow", &api.InvokeRequest{}, "bad key!")
	check("bad key", err, errdefs.ErrInvalid)
	_, err = c.InvokeAsync(ctx, "slow", &api.InvokeRequest{Header: http.Header{api.HeaderMode: {"cold"}}}, "")
	check("mode header", err, errdefs.ErrInvalid)
	_, err = c.InvokeAsync(ctx, "slow", &api.InvokeRequest{Body: bytes.Repeat([]byte("x"), async.DefaultMaxBody+1)}, "")
	check("body past the limit", err, errdefs.ErrTooLarge)
	_, err = c.AsyncResult(ctx, "nosuchid")
	check("unknown id", err, errdefs.ErrNotFound)

	_, err = anon.InvokeAsync(ctx, "slow", &api.InvokeRequest{}, "")
	check("private function without the token", err, errdefs.ErrUnauthorized)
	_, err = anon.AsyncResult(ctx, "nosuchid")
	check("unknown id without the token", err, errdefs.ErrUnauthorized)
	priv, err := c.InvokeAsync(ctx, "slow", &api.InvokeRequest{Path: "/spin?ms=1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, priv.ID)
	_, err = anon.AsyncResult(ctx, priv.ID)
	check("private result without the token", err, errdefs.ErrUnauthorized)
	pub, err := anon.InvokeAsync(ctx, "open", &api.InvokeRequest{Path: "/spin?ms=1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if res := wait(t, anon, pub.ID); res.State != api.AsyncDone || string(res.Body) != "spun\n" {
		t.Fatalf("public result without the token: %+v", res)
	}
}

// A guest fault is retried, then the invocation fails with the error; a
// response with a 4xx/5xx status is done with that status.
func testAsyncFailure(t *testing.T, _ *Running, c *api.Client) {
	ctx := context.Background()
	acc, err := c.InvokeAsync(ctx, "slow", &api.InvokeRequest{Path: "/panic"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if res := wait(t, c, acc.ID); res.State != api.AsyncFailed || res.Attempts != async.DefaultMaxAttempts || res.Error == "" {
		t.Fatalf("panicking function: %+v", res)
	}
	acc, err = c.InvokeAsync(ctx, "slow", &api.InvokeRequest{Path: "/nosuchpath"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if res := wait(t, c, acc.ID); res.State != api.AsyncDone || res.Status != http.StatusNotFound {
		t.Fatalf("a 404 from the function: %+v", res)
	}
}

// Asynchronous work takes only the slots synchronous work leaves: with a
// budget of two instances both busy with synchronous calls, a queued
// invocation waits; it runs once they are done.
func testAsyncYieldsToSynchronous(t *testing.T, rs *Running, c *api.Client) {
	ctx := context.Background()
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Invoke(ctx, "slow", &api.InvokeRequest{Path: "/spin?ms=3000"})
			done <- err
		}()
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		busy := 0
		for _, s := range rs.Worker.States() {
			busy += s.Busy
		}
		if busy == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the synchronous calls never ran")
		}
	}
	// A fetch the runner sent while a slot was free lasts a poll (250ms):
	// let it end.
	time.Sleep(time.Second)
	acc, err := c.InvokeAsync(ctx, "open", &api.InvokeRequest{Path: "/spin?ms=1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // four polls
	res, err := c.AsyncResult(ctx, acc.ID)
	if err != nil || res.State != api.AsyncPending {
		t.Fatalf("while every slot is busy: %+v, %v (want pending)", res, err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if res := wait(t, c, acc.ID); res.State != api.AsyncDone {
		t.Fatalf("after the synchronous calls: %+v", res)
	}
}
