package coord

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/async"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/worker"
)

// Asynchronous invocations (docs/cluster-async.md).
//
// Every worker opens the cluster's work queue (internal/async) once it has
// joined and runs one Runner on it, so any worker accepts asynchronous
// invocations (POST /async/fn/NAME) and answers for their results, and a
// worker with spare capacity runs them. The runner runs an invocation on
// this worker (not through Options.Place): it took the invocation because
// this worker had a free slot.

// asyncDrain bounds how long Close lets running asynchronous invocations
// finish; the ones cut short are handed back to the queue at once, and
// another worker runs them.
const asyncDrain = 5 * time.Second

// asyncPoll is how often the runner looks at the worker's spare capacity
// while it has none, and how long one fetch for work waits: a fetch sent
// while a slot was free may take an invocation up to asyncPoll after the
// slot was taken by synchronous work.
const asyncPoll = 250 * time.Millisecond

// queue returns the asynchronous queue, or ErrUnavailable before it is
// open.
func (c *Coordinator) queue() (*async.Queue, error) {
	if q := c.asyncQ.Load(); q != nil {
		return q, nil
	}
	return nil, fmt.Errorf("asynchronous invocations: the cluster's queue is not open yet: %w", errdefs.ErrUnavailable)
}

// Enqueue queues an asynchronous invocation (server.Async). The function
// must exist here: every worker runs every function of the registry, so
// one unknown here is unknown (404), not merely elsewhere.
func (c *Coordinator) Enqueue(ctx context.Context, inv async.Invocation) (string, error) {
	if _, err := c.Worker.Get(inv.Function); err != nil {
		return "", err
	}
	q, err := c.queue()
	if err != nil {
		return "", err
	}
	id, err := q.Enqueue(ctx, inv)
	if err == nil {
		c.asyncEnqueued.Add(1)
	}
	return id, err
}

// Result returns the state of asynchronous invocation id (server.Async).
func (c *Coordinator) Result(ctx context.Context, id string) (*async.Result, error) {
	q, err := c.queue()
	if err != nil {
		return nil, err
	}
	return q.Results.Get(ctx, id)
}

// runAsync opens the queue (retrying while JetStream elects its leaders)
// and runs this worker's runner until the coordinator closes.
func (c *Coordinator) runAsync() {
	defer c.wg.Done()
	cfg := c.opts.Async
	cfg.Replicas = c.node.Replicas
	var q *async.Queue
	for {
		octx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		var err error
		q, err = async.Open(octx, c.node.JS, cfg)
		cancel()
		if err == nil {
			break
		}
		c.log.Debug("asynchronous queue not open yet", "err", err)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	r, err := q.NewRunner(async.RunnerConfig{Worker: c.id, Handler: c.runInvocation, Spare: c.spare, Poll: asyncPoll, DrainTimeout: asyncDrain, Logger: c.log})
	if err != nil {
		c.log.Error("asynchronous invocations disabled", "err", err)
		return
	}
	c.runner = r
	c.asyncQ.Store(q)
	c.registerAsyncMetrics(q, r)
	_ = r.Run(c.ctx)
}

// spare is the runner's RunnerConfig.Spare: the worker's slots (as
// announced to the cluster: its memory budget in default-sized instances)
// less the instances busy or queued for, counting none of the runner's own
// invocations; none while the worker drains.
func (c *Coordinator) spare() int {
	if c.mem.Draining(c.id) {
		return 0
	}
	budget, _ := c.Worker.Memory()
	n := int(budget / (api.DefaultMemoryMiB << 20))
	for _, s := range c.Worker.States() {
		n -= s.Busy + s.Queued
	}
	if r := c.runner; r != nil {
		n += int(r.Stats().InFlight)
	}
	return n
}

// runInvocation is the runner's Handler: it runs inv on this worker.
func (c *Coordinator) runInvocation(ctx context.Context, inv *async.Invocation) (*async.Response, error) {
	h := inv.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(api.HeaderInvocationID, inv.ID)
	req := &abi.Request{Method: inv.Method, Path: inv.Path, RawQuery: inv.Query, Header: h, Body: inv.Body}
	res, err := c.Worker.Invoke(ctx, inv.Function, req, worker.InvokeOptions{})
	if err != nil {
		return nil, err
	}
	status := res.Response.Status
	if status == 0 {
		status = http.StatusOK
	}
	return &async.Response{Status: status, Header: res.Response.Header, Body: res.Response.Body}, nil
}

// registerAsyncMetrics exports the queue's and the runner's counters on
// the worker's registry.
func (c *Coordinator) registerAsyncMetrics(q *async.Queue, r *async.Runner) {
	var backlog atomic.Pointer[[2]int64]
	backlogAt := func(i int) float64 {
		ctx, cancel := context.WithTimeout(c.ctx, time.Second)
		defer cancel()
		w, run, err := q.Backlog(ctx)
		if err != nil {
			if b := backlog.Load(); b != nil {
				return float64(b[i]) // the last known count
			}
			return math.NaN()
		}
		backlog.Store(&[2]int64{w, run})
		return float64([]int64{w, run}[i])
	}
	stat := func(f func(async.RunnerStats) int64) func() float64 {
		return func() float64 { return float64(f(r.Stats())) }
	}
	c.register("asynchronous invocation",
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "thaw_async_enqueued_total", Help: "Asynchronous invocations this worker accepted into the queue."},
			func() float64 { return float64(c.asyncEnqueued.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thaw_async_queued", Help: "Asynchronous invocations waiting for a runner, cluster-wide."},
			func() float64 { return backlogAt(0) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thaw_async_delivered", Help: "Asynchronous invocations delivered to a runner and not finished, cluster-wide."},
			func() float64 { return backlogAt(1) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thaw_async_running", Help: "Asynchronous invocations this worker is running."},
			stat(func(s async.RunnerStats) int64 { return s.InFlight })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "thaw_async_done_total", Help: "Asynchronous invocations this worker finished with the function's response."},
			stat(func(s async.RunnerStats) int64 { return s.Done })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "thaw_async_failed_total", Help: "Asynchronous invocations this worker gave up (attempts spent, or expired)."},
			stat(func(s async.RunnerStats) int64 { return s.Failed })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "thaw_async_retried_total", Help: "Runs of asynchronous invocations on this worker that failed and were handed back to the queue."},
			stat(func(s async.RunnerStats) int64 { return s.Retried })),
	)
}

// register registers cols, what's metrics, on the worker's registry.
func (c *Coordinator) register(what string, cols ...prometheus.Collector) {
	for _, col := range cols {
		if err := c.Worker.Registry().Register(col); err != nil {
			c.log.Warn(what+" metrics", "err", err)
		}
	}
}
