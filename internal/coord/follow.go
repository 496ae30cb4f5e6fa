package coord

import (
	"context"
	"errors"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/registry"
	"github.com/thaw-run/thaw/internal/worker"
)

// resyncInterval is how often a worker whose local state may differ from
// the registry (a deploy it could not register) asks the registry again.
const resyncInterval = 2 * time.Second

// storedWait bounds how long a follower waits for the origin's snapshot to
// reach the shared store (the origin publishes in the background, so the
// record can arrive first) before it boots and snapshots its own.
const storedWait = 10 * time.Second

// deployFollowed deploys rec, another worker's deploy, on this worker: from
// the origin's snapshot in the shared store when there is one (the cluster
// snapshots a function once, and every worker restores that snapshot), else
// with a boot and a snapshot of its own. It says which ("stored" or
// "booted").
func (c *Coordinator) deployFollowed(rec registry.Record, wasm []byte) (string, error) {
	cfg := worker.Config(rec.Config)
	if rec.Snapshot != "" && rec.Origin != c.id {
		deadline := time.Now().Add(storedWait)
		for {
			_, err := c.Worker.DeployStored(c.ctx, rec.Name, wasm, cfg, rec.Snapshot)
			if err == nil {
				return "stored", nil
			}
			if !errors.Is(err, errdefs.ErrNotFound) || time.Now().After(deadline) || c.ctx.Err() != nil {
				if !errors.Is(err, errdefs.ErrUnavailable) {
					c.log.Info("the origin's snapshot is not usable from the store; booting one here", "function", rec.Name, "snapshot", rec.Snapshot, "err", err)
				}
				break
			}
			select {
			case <-c.ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	_, err := c.Worker.Deploy(c.ctx, rec.Name, wasm, cfg)
	return "booted", err
}

// follow applies the registry to the worker until the coordinator
// closes: every record is deployed here (unless this worker already runs
// it), every deletion deleted. When the watch first catches up, local
// functions the registry has never heard of (deployed before this worker
// joined a registry) are published to it rather than deleted; names the
// registry holds a deletion for are deleted here.
func (c *Coordinator) follow() {
	for c.ctx.Err() == nil {
		ch, err := c.reg.Watch(c.ctx)
		if err != nil {
			c.log.Warn("registry watch", "err", err)
			select {
			case <-c.ctx.Done():
			case <-time.After(resyncInterval):
			}
			continue
		}
		known := map[string]bool{}
		c.log.Debug("watching the registry")
		for ev := range ch {
			if ev.Synced {
				select {
				case <-c.synced:
				default:
					c.adopt(known)
					close(c.synced)
				}
				continue
			}
			known[ev.Record.Name] = true
			c.log.Debug("registry event", "function", ev.Record.Name, "generation", ev.Record.Generation, "deleted", ev.Deleted)
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				// Bounded: a worker joining a registry of hundreds of
				// functions compiles a few at a time, not all at once.
				select {
				case c.applying <- struct{}{}:
				case <-c.ctx.Done():
					return
				}
				defer func() { <-c.applying }()
				c.apply(ev)
			}()
		}
	}
}

// apply brings one function on this worker to ev, unless a later
// generation is already applied.
func (c *Coordinator) apply(ev registry.Event) {
	name := ev.Record.Name
	unlock := c.lock(name)
	defer unlock()
	c.mu.Lock()
	done := c.applied[name] >= ev.Record.Generation
	c.mu.Unlock()
	if done || c.ctx.Err() != nil {
		return
	}
	var local *worker.FunctionState
	for _, s := range c.Worker.States() {
		if s.Name == name {
			local = &s
			break
		}
	}
	switch {
	case ev.Deleted:
		if local != nil {
			if err := c.Worker.Delete(c.ctx, name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				c.log.Warn("deleting a function the cluster deleted", "function", name, "err", err)
				return
			}
			c.log.Info("deleted by the cluster", "function", name, "generation", ev.Record.Generation)
		}
	case local != nil && sameDeploy(*local, ev.Record):
		// Already running it (a restart, or this worker's own deploy).
	default:
		start := time.Now()
		ctx, cancel := context.WithTimeout(c.ctx, 4*registryTimeout)
		wasm, err := c.reg.Module(ctx, ev.Record.ModuleSHA)
		cancel()
		if err != nil {
			c.log.Warn("fetching a deployed module", "function", name, "generation", ev.Record.Generation, "err", err)
			c.resync(name)
			return
		}
		how, err := c.deployFollowed(ev.Record, wasm)
		if err != nil {
			c.log.Warn("deploying a function the cluster deployed", "function", name, "generation", ev.Record.Generation, "err", err)
			return
		}
		c.log.Info("deployed by the cluster", "function", name, "generation", ev.Record.Generation, "origin", ev.Record.Origin,
			"snapshot", how, "took", time.Since(start).Round(time.Millisecond))
	}
	c.mu.Lock()
	c.applied[name] = ev.Record.Generation
	c.mu.Unlock()
}

// adopt publishes the local functions the registry has no record or
// deletion of (known: every name the watch delivered).
func (c *Coordinator) adopt(known map[string]bool) {
	for _, s := range c.Worker.States() {
		if known[s.Name] {
			continue
		}
		wasm, err := c.Worker.Module(s.Name)
		if err != nil {
			c.log.Warn("adopting a local function into the registry", "function", s.Name, "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, 4*registryTimeout)
		_, err = c.reg.PutModule(ctx, wasm)
		if err == nil {
			rec := registry.Record{Name: s.Name, Config: api.Config(s.Config), ModuleSHA: s.ModuleSHA, ModuleSize: len(wasm), Origin: c.id,
				Snapshot: s.Snapshot, Deployed: time.Now().UTC()}
			var gen uint64
			if gen, err = c.reg.Put(ctx, rec, 0); err == nil {
				c.mu.Lock()
				c.applied[s.Name] = gen
				c.mu.Unlock()
				c.log.Info("published a local function to the cluster registry", "function", s.Name, "generation", gen)
			}
		}
		cancel()
		if err != nil && !errors.Is(err, errdefs.ErrConflict) {
			c.log.Warn("adopting a local function into the registry", "function", s.Name, "err", err)
		}
	}
}

// resync brings function name back to what the registry holds, in the
// background, retrying until the registry answers: after a deploy this
// worker made but could not register, or a module it could not fetch.
func (c *Coordinator) resync(name string) {
	c.mu.Lock()
	c.applied[name] = 0
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for failures := 0; ; failures++ {
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(resyncInterval):
			}
			ctx, cancel := context.WithTimeout(c.ctx, registryTimeout)
			rec, err := c.reg.Get(ctx, name)
			cancel()
			ev := registry.Event{Record: rec}
			last, watched := c.reg.Last(name)
			switch {
			case errors.Is(err, errdefs.ErrNotFound):
				ev = registry.Event{Record: registry.Record{Name: name, Generation: 1}, Deleted: true}
			case err != nil && watched:
				ev = last
			case err != nil:
				if failures%15 == 0 {
					c.log.Warn("asking the registry for a function to resync", "function", name, "err", err)
				}
				continue
			}
			// A get may be answered by a replica that has not caught up
			// (this worker's own, just back from a partition): what the
			// watch delivered was committed, so a later generation of it
			// wins, also over a "not found"; and it stands in for a get
			// that fails.
			if watched && last.Record.Generation > ev.Record.Generation {
				ev = last
			}
			c.apply(ev)
			return
		}
	}()
}
