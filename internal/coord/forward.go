package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/worker"
)

// Forwarding.
//
// Every worker answers invocations on the subject thaw.invoke.<node id>
// (request/reply): a worker (or a gateway) hands an invocation to a peer
// with Forward, and a peer that is gone answers at once with NATS's "no
// responders". Which worker serves an invocation is Options.Placement's
// decision (place.go); without it every invocation is served locally and
// touches no NATS.
//
// A forward carries the caller's deadline, if any: the peer stops waiting
// for an instance when the caller has given up. A peer refuses (Refused in
// the reply) what it will not run: it is draining or closing, or the
// function is unknown there or its queue is full; the caller then places
// the invocation again elsewhere, as it does after "no responders". Both
// are errNotDelivered.

// InvokeSubject prefixes a worker's invocation subject.
const InvokeSubject = "thaw.invoke."

// forwardRequest is an invocation on the wire between workers.
type forwardRequest struct {
	Name    string               `json:"name"`
	Request *abi.Request         `json:"request"`
	Options worker.InvokeOptions `json:"options"`
	// Deadline is the caller's, if it has one.
	Deadline time.Time `json:"deadline,omitzero"`
}

// forwardReply is its answer: a result, or a status saying why not
// (Refused: the worker did not run the function).
type forwardReply struct {
	Result *worker.Result `json:"result,omitempty"`
	status
}

// status is what a worker's reply to a forward or a deploy carries beside
// its payload: an error with its category, and whether the worker refused
// before trying, so that another worker may (errNotDelivered). Its fields
// are the reply's own on the wire.
type status struct {
	Error    string `json:"error,omitempty"`
	Category string `json:"category,omitempty"`
	Refused  bool   `json:"refused,omitempty"`
}

// failed is the status of err.
func failed(err error) status { return status{Error: err.Error(), Category: errdefs.Category(err)} }

// refused is the status of a request refused for err.
func refused(err error) status {
	s := failed(err)
	s.Refused = true
	return s
}

// shuttingDown is the status of a worker that is closing.
func shuttingDown(id string) status {
	return refused(fmt.Errorf("worker %s is shutting down: %w", id, errdefs.ErrUnavailable))
}

// draining is the status of a worker asked to drain.
func draining(id string) status {
	return refused(fmt.Errorf("worker %s is draining: %w", id, errdefs.ErrUnavailable))
}

// err is the error s reports (nil if none); a refusal is errNotDelivered.
func (s status) err() error {
	apiErr := &api.Error{Category: s.Category, Message: s.Error}
	switch {
	case s.Refused:
		return fmt.Errorf("refused: %w: %w", errNotDelivered, apiErr)
	case s.Error != "":
		return apiErr
	}
	return nil
}

// Invoke serves an invocation here, or where Options.Placement places it.
// Either way the result's timing names the worker that served it.
func (c *Coordinator) Invoke(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	if c.router == nil {
		res, err := c.Worker.Invoke(ctx, name, req, opts)
		if res != nil {
			res.Timing.Worker = c.id
		}
		return res, err
	}
	return c.router.route(ctx, name, req, opts)
}

// Admit is the worker's admission check, except that with placement a
// full local queue does not refuse the request: placement may find it a
// worker with room, or hold it.
func (c *Coordinator) Admit(name string) error {
	err := c.Worker.Admit(name)
	if c.router != nil && errors.Is(err, errdefs.ErrOverloaded) {
		return nil
	}
	return err
}

// Forward has worker node serve an invocation.
func (c *Coordinator) Forward(ctx context.Context, node, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	return forward(ctx, c.node.Conn, node, name, req, opts)
}

// forward sends an invocation to worker node over conn and waits for its
// answer.
func forward(ctx context.Context, conn *nats.Conn, node, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	fr := forwardRequest{Name: name, Request: req, Options: opts}
	if d, ok := ctx.Deadline(); ok {
		fr.Deadline = d
	}
	b, err := json.Marshal(fr)
	if err != nil {
		return nil, err
	}
	msg, err := conn.RequestWithContext(ctx, InvokeSubject+node, b)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("forward %s to worker %s: no responders: %w: %w", name, node, errNotDelivered, errdefs.ErrUnavailable)
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, fmt.Errorf("forward %s to worker %s: %v: %w", name, node, err, errdefs.ErrTooLarge)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("forward %s to worker %s: %w", name, node, err)
	case err != nil:
		return nil, fmt.Errorf("forward %s to worker %s: %v: %w", name, node, err, errdefs.ErrUnavailable)
	}
	var rep forwardReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("forward %s to worker %s: reply: %v: %w", name, node, err, errdefs.ErrUnavailable)
	}
	if err := rep.err(); err != nil {
		// api.Error unwraps to the category's errdefs sentinel.
		return nil, fmt.Errorf("worker %s: %s: %w", node, name, err)
	}
	if rep.Result == nil || rep.Result.Response == nil {
		return nil, fmt.Errorf("worker %s: %s: a reply without a result: %w", node, name, errdefs.ErrUnavailable)
	}
	return rep.Result, nil
}

// serveForwarded answers invocations on this worker's subject until the
// connection closes.
func (c *Coordinator) serveForwarded() error {
	sub, err := c.serveSubject(InvokeSubject+c.id,
		forwardReply{status: shuttingDown(c.id)},
		func(data []byte) any { return c.serveOne(data) })
	c.sub = sub
	return err
}

// serveSubject answers the requests on subject until the connection
// closes: each is handled in a goroutine of its own, counted in c.wg, and
// its answer encoded as the reply; once the coordinator closes, closing is
// the answer.
func (c *Coordinator) serveSubject(subject string, closing any, handle func(data []byte) any) (*nats.Subscription, error) {
	return c.node.Conn.Subscribe(subject, func(m *nats.Msg) {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			respondJSON(m, closing)
			return
		}
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			respondJSON(m, handle(m.Data))
		}()
	})
}

// serveOne runs one forwarded invocation, or refuses it.
func (c *Coordinator) serveOne(data []byte) forwardReply {
	var fr forwardRequest
	if err := json.Unmarshal(data, &fr); err != nil || fr.Request == nil {
		return forwardReply{status: failed(fmt.Errorf("malformed forwarded invocation: %w", errdefs.ErrInvalid))}
	}
	refuse := func(err error) forwardReply { return forwardReply{status: refused(err)} }
	if c.draining() {
		return forwardReply{status: draining(c.id)}
	}
	if err := c.Worker.Admit(fr.Name); err != nil {
		return refuse(err)
	}
	ctx := c.ctx
	if !fr.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, fr.Deadline)
		defer cancel()
	}
	res, err := c.Worker.Invoke(ctx, fr.Name, fr.Request, fr.Options)
	switch {
	case errors.Is(err, errdefs.ErrNotFound), errors.Is(err, errdefs.ErrOverloaded):
		// Refused before an instance ran: the queue was full, or the
		// function went away after Admit.
		return refuse(err)
	case err != nil:
		return forwardReply{status: failed(err)}
	}
	res.Timing.Worker = c.id
	return forwardReply{Result: res}
}

// servePrewarm starts an idle instance of each function named on this
// worker's pre-warm subject, at most maxPrewarms at once (more requests
// are dropped: the held requests' next placement finds the instances
// already starting).
func (c *Coordinator) servePrewarm() error {
	sub, err := c.serveBounded(PrewarmSubject+c.id, maxPrewarms, func(m *nats.Msg) func() {
		name := string(m.Data)
		if worker.ValidName(name) != nil || c.draining() {
			return nil
		}
		return func() {
			ctx, cancel := context.WithTimeout(c.ctx, prewarmTimeout)
			defer cancel()
			if err := c.Worker.Prewarm(ctx, name); err != nil {
				c.log.Debug("pre-warm failed", "function", name, "err", err)
			}
		}
	})
	c.prewarmSub = sub
	return err
}

// serveBounded subscribes to subject and runs the work that parse makes of
// each message (nil: none) on a goroutine of its own, at most limit at
// once: a message that arrives while limit are running, or once Close has
// begun, is dropped. Close waits for the work that runs.
func (c *Coordinator) serveBounded(subject string, limit int, parse func(*nats.Msg) func()) (*nats.Subscription, error) {
	sem := make(chan struct{}, limit)
	return c.node.Conn.Subscribe(subject, func(m *nats.Msg) {
		work := parse(m)
		if work == nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closing {
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			return
		}
		c.wg.Add(1)
		go func() {
			defer func() { <-sem; c.wg.Done() }()
			work()
		}()
	})
}

// maxPrewarms bounds the pre-warms a worker runs at once; prewarmTimeout
// bounds one's wait for memory.
const (
	maxPrewarms    = 2
	prewarmTimeout = 30 * time.Second
)
