package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/placement"
	"github.com/thaw-run/thaw/internal/worker"
)

// Deploys through a gateway.
//
// A deploy compiles, boots and snapshots on a worker, and a gateway runs
// none: it stores the module in the registry's module store and asks a
// worker to deploy it, on the subject thaw.deploy.<node id>
// (request/reply). The worker reads the module back by its hash and
// deploys it as if the request had come to its own API (Coordinator.Deploy:
// registry generation, local deploy, record with CAS). A deletion needs no
// worker: the gateway deletes the record and every worker follows.

// DeploySubject prefixes a worker's deploy subject.
const DeploySubject = "thaw.deploy."

// remoteDeployTimeout bounds a deploy asked of a worker when the caller's
// context has no deadline: a JavaScript function's first deploy compiles
// tens of megabytes of wasm (docs/engine.md).
const remoteDeployTimeout = 10 * time.Minute

// deployRequest is a deploy on the wire: the module by its hash in the
// registry's module store.
type deployRequest struct {
	Name      string        `json:"name"`
	ModuleSHA string        `json:"module_sha"`
	Config    worker.Config `json:"config"`
}

// deployReply is its answer: the function as deployed, or an error with
// its category; Refused says the worker did not try (it drains, closes or
// has not joined the registry), so another may.
type deployReply struct {
	Info *worker.Info `json:"info,omitempty"`
	status
}

// serveDeploys answers deploy requests on this worker's subject until the
// connection closes.
func (c *Coordinator) serveDeploys() error {
	_, err := c.serveSubject(DeploySubject+c.id,
		deployReply{status: shuttingDown(c.id)},
		func(data []byte) any { return c.deployAsked(data) })
	return err
}

// deployAsked runs one deploy asked by a gateway.
func (c *Coordinator) deployAsked(data []byte) deployReply {
	var dr deployRequest
	if err := json.Unmarshal(data, &dr); err != nil {
		return deployReply{status: failed(fmt.Errorf("malformed deploy request: %w", errdefs.ErrInvalid))}
	}
	refuse := func(err error) deployReply {
		return deployReply{status: refused(err)}
	}
	if c.draining() {
		return deployReply{status: draining(c.id)}
	}
	reg, err := c.registry()
	if err != nil {
		return refuse(err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, remoteDeployTimeout)
	defer cancel()
	mctx, mcancel := context.WithTimeout(ctx, 4*registryTimeout)
	wasm, err := reg.Module(mctx, dr.ModuleSHA)
	mcancel()
	if err != nil {
		return refuse(fmt.Errorf("deploy %s: module %.12s: %w", dr.Name, dr.ModuleSHA, err))
	}
	info, err := c.Deploy(ctx, dr.Name, wasm, dr.Config)
	if err != nil {
		return deployReply{status: failed(err)}
	}
	return deployReply{Info: info}
}

// Deploy stores the module in the registry's module store and has a
// worker deploy it: one of the function's rendezvous homes first (where
// placement sends its misses), then the other live workers that are not
// draining; a worker that refuses or is gone is skipped. The function's
// own failure (a module that does not initialise) is the answer.
func (g *Gateway) Deploy(ctx context.Context, name string, wasm []byte, cfg worker.Config) (*worker.Info, error) {
	if err := worker.ValidName(name); err != nil {
		return nil, err
	}
	m := g.member()
	if m == nil {
		return nil, fmt.Errorf("deploy %s: not joined to the cluster yet: %w", name, errdefs.ErrUnavailable)
	}
	rctx, cancel := context.WithTimeout(ctx, 4*registryTimeout)
	sha, err := g.reg.PutModule(rctx, wasm)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	v := View(m.State())
	workers := placement.Homes(v, name, len(v.Workers))
	if len(workers) == 0 {
		return nil, fmt.Errorf("deploy %s: no worker to deploy on (none live, or all draining): %w", name, errdefs.ErrUnavailable)
	}
	b, err := json.Marshal(deployRequest{Name: name, ModuleSHA: sha, Config: cfg})
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, remoteDeployTimeout)
		defer cancel()
	}
	var lastErr error
	for _, node := range workers {
		info, err := g.deployOn(ctx, node, b)
		if err == nil {
			g.log.Info("deployed through a worker", "function", name, "worker", node)
			return info, nil
		}
		if !errors.Is(err, errNotDelivered) || ctx.Err() != nil {
			return nil, fmt.Errorf("deploy %s on worker %s: %w", name, node, err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("deploy %s: every worker refused: %w", name, lastErr)
}

// deployOn asks worker node to deploy the encoded request b.
func (g *Gateway) deployOn(ctx context.Context, node string, b []byte) (*worker.Info, error) {
	msg, err := g.node.Conn.RequestWithContext(ctx, DeploySubject+node, b)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("no responders: %w: %w", errNotDelivered, errdefs.ErrUnavailable)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("waiting for the worker: %w", err)
	case err != nil:
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrUnavailable)
	}
	var rep deployReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("reply: %v: %w", err, errdefs.ErrUnavailable)
	}
	if err := rep.err(); err != nil {
		return nil, err
	}
	if rep.Info == nil {
		return nil, fmt.Errorf("a reply without the function: %w", errdefs.ErrUnavailable)
	}
	return rep.Info, nil
}

// Delete deletes name from the registry; every worker follows.
func (g *Gateway) Delete(ctx context.Context, name string) error {
	if err := worker.ValidName(name); err != nil {
		return err
	}
	if g.member() == nil {
		return fmt.Errorf("delete %s: not joined to the cluster yet: %w", name, errdefs.ErrUnavailable)
	}
	rctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	prev, err := g.reg.Generation(rctx, name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if prev == 0 {
		return fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	if err := g.reg.Delete(rctx, name, prev); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// respondJSON sends v, encoded, as the reply to m.
func respondJSON(m *nats.Msg, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(status{Error: err.Error(), Category: "internal"})
	}
	_ = m.Respond(b)
}
