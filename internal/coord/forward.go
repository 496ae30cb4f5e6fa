package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/worker"
)

// Forwarding.
//
// Every worker answers invocations on the subject thaw.invoke.<node id>
// (request/reply): a worker hands an invocation to a peer with Forward, and
// a peer that is gone answers at once with NATS's "no responders", which
// Forward reports as errdefs.ErrUnavailable. Which worker serves an
// invocation is Options.Place's decision (internal/placement plugs in
// there); without it every invocation is served locally and touches no
// NATS.

// InvokeSubject prefixes a worker's invocation subject.
const InvokeSubject = "thaw.invoke."

// forwardRequest is an invocation on the wire between workers.
type forwardRequest struct {
	Name    string               `json:"name"`
	Request *abi.Request         `json:"request"`
	Options worker.InvokeOptions `json:"options"`
}

// forwardReply is its answer: a result, or an error with its category.
type forwardReply struct {
	Result   *worker.Result `json:"result,omitempty"`
	Error    string         `json:"error,omitempty"`
	Category string         `json:"category,omitempty"`
}

// Invoke serves an invocation here, or on the worker Options.Place
// names.
func (c *Coordinator) Invoke(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	if c.opts.Place != nil {
		if node := c.opts.Place(name); node != "" && node != c.id {
			return c.Forward(ctx, node, name, req, opts)
		}
	}
	return c.invokeHere(ctx, name, req, opts)
}

// invokeHere serves an invocation on this worker and names it as the
// server in the result's timing.
func (c *Coordinator) invokeHere(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	res, err := c.Worker.Invoke(ctx, name, req, opts)
	if res != nil {
		res.Timing.Node = c.id
	}
	return res, err
}

// Forward has worker node serve an invocation.
func (c *Coordinator) Forward(ctx context.Context, node, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	b, err := json.Marshal(forwardRequest{Name: name, Request: req, Options: opts})
	if err != nil {
		return nil, err
	}
	msg, err := c.node.Conn.RequestWithContext(ctx, InvokeSubject+node, b)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("forward %s to worker %s: no responders: %w", name, node, errdefs.ErrUnavailable)
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, fmt.Errorf("forward %s to worker %s: %v: %w", name, node, err, errdefs.ErrTooLarge)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("forward %s to worker %s: %w", name, node, err)
	case err != nil:
		return nil, fmt.Errorf("forward %s to worker %s: %v: %w", name, node, err, errdefs.ErrUnavailable)
	}
	var rep forwardReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("forward %s to worker %s: reply: %v: %w", name, node, err, errdefs.ErrUnavailable)
	}
	if rep.Error != "" || rep.Result == nil || rep.Result.Response == nil {
		// api.Error unwraps to the category's errdefs sentinel.
		return nil, fmt.Errorf("worker %s: %w", node, &api.Error{Category: rep.Category, Message: rep.Error})
	}
	return rep.Result, nil
}

// serveForwarded answers invocations on this worker's subject until the
// connection closes.
func (c *Coordinator) serveForwarded() error {
	sub, err := c.node.Conn.Subscribe(InvokeSubject+c.id, func(m *nats.Msg) {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return // the caller's request times out; Close is under way
		}
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			var rep forwardReply
			var fr forwardRequest
			if err := json.Unmarshal(m.Data, &fr); err != nil || fr.Request == nil {
				rep.Error, rep.Category = "malformed forwarded invocation", errdefs.Category(errdefs.ErrInvalid)
			} else if res, err := c.invokeHere(c.ctx, fr.Name, fr.Request, fr.Options); err != nil {
				rep.Error, rep.Category = err.Error(), errdefs.Category(err)
			} else {
				rep.Result = res
			}
			b, err := json.Marshal(rep)
			if err != nil {
				b, _ = json.Marshal(forwardReply{Error: err.Error(), Category: "internal"})
			}
			_ = m.Respond(b)
		}()
	})
	c.sub = sub
	return err
}
