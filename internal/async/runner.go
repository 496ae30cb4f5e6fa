package async

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Handler runs one invocation and returns the function's response. An
// error means the invocation could not be run (no such function, the
// worker overloaded, the pager gone) and is retried while attempts are
// left; a response with any status, 5xx included, is a done invocation.
// The Handler must return when ctx ends.
type Handler func(ctx context.Context, inv *Invocation) (*Response, error)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Worker names this runner in Results (the worker's node id).
	Worker string
	// Handler runs the invocations. Required.
	Handler Handler
	// MaxInFlight bounds the invocations this runner runs at once
	// (default 4).
	MaxInFlight int
	// Spare, if set, is the worker's capacity left by its synchronous
	// work: its invocation slots minus the synchronous invocations in
	// flight, not counting this runner's. The runner keeps at most that
	// many (and MaxInFlight) invocations of its own in flight, and takes
	// none while it has that many, so that asynchronous work fills idle
	// slots and yields to synchronous traffic. (It must not count the
	// runner's own invocations: the runner counts them from the moment
	// it takes them, before the worker sees them start.)
	Spare func() int
	// Poll is how long one fetch waits for work, and how often spare
	// capacity is looked at again while there is none (default 1s).
	Poll time.Duration
	// DrainTimeout is how long Run, once its context ends, lets running
	// invocations finish before cancelling them (default the queue's
	// AckWait). A cancelled invocation is handed back to the queue.
	DrainTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Runner pulls invocations from the queue and runs them. Any number of
// runners, on any workers, may share a queue.
type Runner struct {
	q        *Queue
	cfg      RunnerConfig
	inflight atomic.Int64
	freed    chan struct{}
	stats    struct{ runs, done, failed, retried atomic.Int64 }
}

// RunnerStats counts a runner's work since it was made.
type RunnerStats struct {
	// Runs counts handler calls; Done and Failed the final Results this
	// runner wrote; Retried the runs that failed and were handed back.
	Runs, Done, Failed, Retried int64
	// InFlight is the number of invocations running now.
	InFlight int64
}

// NewRunner returns a runner of q's invocations; Run starts it.
func (q *Queue) NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Handler == nil {
		return nil, fmt.Errorf("async: runner needs a handler: %w", errdefs.ErrInvalid)
	}
	setDefault(&cfg.MaxInFlight, 4)
	setDefault(&cfg.Poll, time.Second)
	setDefault(&cfg.DrainTimeout, q.cfg.AckWait)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{q: q, cfg: cfg, freed: make(chan struct{}, 1)}, nil
}

// Stats returns the runner's counters.
func (r *Runner) Stats() RunnerStats {
	return RunnerStats{Runs: r.stats.runs.Load(), Done: r.stats.done.Load(), Failed: r.stats.failed.Load(),
		Retried: r.stats.retried.Load(), InFlight: r.inflight.Load()}
}

// Run fetches and runs invocations until ctx ends, then stops fetching,
// waits up to DrainTimeout for the running ones and cancels the rest, and
// returns when none is left. Errors talking to NATS are logged and
// retried, so Run returns nil.
func (r *Runner) Run(ctx context.Context) error {
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		limit := r.cfg.MaxInFlight
		if r.cfg.Spare != nil {
			limit = min(limit, r.cfg.Spare())
		}
		free := limit - int(r.inflight.Load())
		if free <= 0 {
			r.pause(ctx, r.freed)
			continue
		}
		if err := r.fetch(ctx, hctx, free, &wg); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("async: fetching invocations failed", "err", err)
			r.pause(ctx, nil)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(r.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancelHandlers()
		<-done
	}
	return nil
}

// pause waits for Poll, the end of ctx or a signal on wake.
func (r *Runner) pause(ctx context.Context, wake <-chan struct{}) {
	t := time.NewTimer(r.cfg.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// fetch asks for up to n invocations, waiting at most Poll, and starts
// each as it arrives.
func (r *Runner) fetch(ctx, hctx context.Context, n int, wg *sync.WaitGroup) error {
	fctx, cancel := context.WithTimeout(ctx, r.cfg.Poll)
	defer cancel()
	batch, err := r.q.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		return err
	}
	for msg := range batch.Messages() {
		r.inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.release()
			r.handle(hctx, msg)
		}()
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (r *Runner) release() {
	r.inflight.Add(-1)
	select {
	case r.freed <- struct{}{}:
	default:
	}
}

// bookkeeping returns the context of the KV writes and acks that record
// what happened to an invocation: they outlive a cancelled handler.
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// handle runs one delivery of an invocation to its end: a final Result
// and an ack, or a hand-back to the queue.
func (r *Runner) handle(ctx context.Context, msg jetstream.Msg) {
	log := r.cfg.Logger
	meta, err := msg.Metadata()
	if err != nil {
		log.Warn("async: message without metadata; dropped", "err", err)
		_ = msg.Term()
		return
	}
	inv, err := decode(msg.Data())
	if err != nil {
		log.Warn("async: malformed invocation; dropped", "seq", meta.Sequence.Stream, "err", err)
		_ = msg.TermWithReason("malformed invocation")
		return
	}
	inv.Attempt = int(meta.NumDelivered)
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	cur, _, err := r.q.Results.get(bctx, inv.ID)
	if err != nil {
		log.Warn("async: reading result failed; invocation handed back", "id", inv.ID, "err", err)
		_ = msg.NakWithDelay(r.q.cfg.RetryDelay)
		return
	}
	if cur != nil && cur.State.Final() {
		_ = msg.Ack() // ran already: a duplicate, or an ack that was lost
		return
	}
	lastErr := "the worker running it was lost"
	if cur != nil && cur.State != StateRunning && cur.Error != "" {
		lastErr = cur.Error
	}
	if inv.Attempt > r.q.cfg.MaxAttempts {
		r.finish(bctx, msg, inv, &Result{State: StateFailed, Attempts: r.q.cfg.MaxAttempts,
			Error: fmt.Sprintf("gave up after %d attempts: %s", r.q.cfg.MaxAttempts, lastErr)})
		return
	}
	if age := time.Since(inv.Enqueued); age > r.q.cfg.MaxEventAge {
		r.finish(bctx, msg, inv, &Result{State: StateFailed, Attempts: inv.Attempt - 1,
			Error: fmt.Sprintf("expired: queued %s ago, beyond the maximum event age of %s", age.Round(time.Second), r.q.cfg.MaxEventAge)})
		return
	}
	running := r.record(inv, StateRunning)
	running.Started = time.Now().UTC()
	if cur != nil {
		running.Error = cur.Error
	}
	if err := r.q.Results.update(bctx, inv.ID, func(*Result) *Result { return running }); err != nil {
		if errors.Is(err, errFinal) {
			_ = msg.Ack()
			return
		}
		log.Warn("async: recording start failed; invocation handed back", "id", inv.ID, "err", err)
		_ = msg.NakWithDelay(r.q.cfg.RetryDelay)
		return
	}
	r.stats.runs.Add(1)
	stop := r.heartbeat(msg)
	resp, herr := r.cfg.Handler(ctx, inv)
	stop()
	if herr == nil && resp == nil {
		resp = &Response{Status: 200}
	}
	if herr == nil {
		done := r.record(inv, StateDone)
		done.Started, done.Finished = running.Started, time.Now().UTC()
		done.Status, done.Header, done.Body = resp.Status, resp.Header, resp.Body
		r.finish(bctx, msg, inv, done)
		return
	}
	if ctx.Err() == nil && inv.Attempt >= r.q.cfg.MaxAttempts {
		failed := r.record(inv, StateFailed)
		failed.Started, failed.Finished, failed.Error = running.Started, time.Now().UTC(), herr.Error()
		r.finish(bctx, msg, inv, failed)
		return
	}
	// Hand it back: another delivery (here or elsewhere) tries again.
	pending := r.record(inv, StatePending)
	pending.Error = herr.Error()
	if err := r.q.Results.update(bctx, inv.ID, func(*Result) *Result { return pending }); err != nil && !errors.Is(err, errFinal) {
		log.Warn("async: recording a failed attempt failed", "id", inv.ID, "err", err)
	}
	r.stats.retried.Add(1)
	delay := r.q.cfg.RetryDelay
	if ctx.Err() != nil {
		delay = 0 // the runner is stopping, not the invocation failing
	}
	_ = msg.NakWithDelay(delay)
}

// record returns the Result of inv in state s, as this runner writes it.
func (r *Runner) record(inv *Invocation, s State) *Result {
	return &Result{ID: inv.ID, State: s, Function: inv.Function, Attempts: inv.Attempt, Worker: r.cfg.Worker, Enqueued: inv.Enqueued}
}

// finish writes the final Result res of inv (unless another runner wrote
// one first) and acknowledges the message. If the write fails the message
// is left unacknowledged, to be redelivered after AckWait.
func (r *Runner) finish(ctx context.Context, msg jetstream.Msg, inv *Invocation, res *Result) {
	res.ID, res.Function, res.Enqueued = inv.ID, inv.Function, inv.Enqueued
	if res.Worker == "" {
		res.Worker = r.cfg.Worker
	}
	err := r.q.Results.update(ctx, inv.ID, func(*Result) *Result { return res })
	switch {
	case err == nil:
		if res.State == StateDone {
			r.stats.done.Add(1)
		} else {
			r.stats.failed.Add(1)
		}
	case errors.Is(err, errFinal):
	default:
		r.cfg.Logger.Warn("async: recording the result failed; it will run again", "id", inv.ID, "err", err)
		return
	}
	if err := msg.Ack(); err != nil {
		r.cfg.Logger.Debug("async: ack failed", "id", inv.ID, "err", err)
	}
}

// heartbeat tells JetStream, every third of AckWait, that msg is still
// being worked on, until the returned stop is called.
func (r *Runner) heartbeat(msg jetstream.Msg) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(r.q.cfg.AckWait/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(quit); <-done }
}
