//go:build cgo

package wasmtime

// Temporary: the shared guest plumbing that the engine seam exports from
// internal/engine (Prepare, Clock, Sleeper, TailBuffer, GuestFault,
// Deadline). This file goes when the seam lands.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/rewrite"
)

type prepared struct {
	Boot []byte
	Info *rewrite.Info
}

func prepare(wasm []byte) (*prepared, error) {
	boot, info, err := rewrite.Instrument(wasm)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"_initialize", abi.ExportAlloc, abi.ExportHandle} {
		if !slices.Contains(info.Exports, name) {
			return nil, fmt.Errorf("module does not export %q (not a thaw reactor; build it with `thaw build`): %w", name, errdefs.ErrInvalid)
		}
	}
	return &prepared{Boot: boot, Info: info}, nil
}

func (p *prepared) Exports(name string) bool { return slices.Contains(p.Info.Exports, name) }

func (p *prepared) RestoreWasm(pages uint32) ([]byte, error) {
	if err := p.CheckPages(pages); err != nil {
		return nil, err
	}
	wasm, err := rewrite.ForRestore(p.Boot, p.Info.MemoryMinPages)
	if err != nil {
		return nil, fmt.Errorf("derive restore module: %w", err)
	}
	return wasm, nil
}

func (p *prepared) CheckPages(pages uint32) error {
	switch {
	case pages < p.Info.MemoryMinPages:
		return fmt.Errorf("snapshot has %d pages, fewer than the module's minimum %d: %w", pages, p.Info.MemoryMinPages, errdefs.ErrInvalid)
	case p.Info.MemoryMaxPages != nil && pages > *p.Info.MemoryMaxPages:
		return fmt.Errorf("snapshot has %d pages, module allows at most %d: %w", pages, *p.Info.MemoryMaxPages, errdefs.ErrInvalid)
	}
	return nil
}

func (p *prepared) CheckState(st *engine.State) error {
	if len(st.Globals) != len(p.Info.Globals) {
		return fmt.Errorf("snapshot has %d globals, module %d: %w", len(st.Globals), len(p.Info.Globals), errdefs.ErrCorrupt)
	}
	return nil
}

type clock struct {
	base  int64
	start time.Time
}

func newClock(base int64) *clock { return &clock{base: base, start: time.Now()} }

func (c *clock) Nanotime() int64 { return c.base + int64(time.Since(c.start)) }

type sleeper struct {
	mu   sync.Mutex
	done <-chan struct{}
}

func (s *sleeper) During(ctx context.Context) func() {
	s.mu.Lock()
	s.done = ctx.Done()
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.done = nil
		s.mu.Unlock()
	}
}

func (s *sleeper) Sleep(ns int64) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if ns <= 0 || done == nil {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

type tailBuffer struct {
	Max int
	mu  sync.Mutex
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Take() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.b)
	t.b = t.b[:0]
	return s
}

func guestFault(fn string, err error, stderr *tailBuffer, region *engine.Region, denied bool) error {
	msg := strings.TrimSpace(stderr.Take())
	if denied || strings.Contains(msg, "out of memory") {
		return fmt.Errorf("%s: guest exceeded its memory cap of %d MiB: %w", fn, region.Limit()>>20, errdefs.ErrGuest)
	}
	if msg != "" {
		lines := strings.SplitN(msg, "\n", 7)
		if len(lines) > 6 {
			lines = lines[:6]
		}
		return fmt.Errorf("%s: %v: %s: %w", fn, err, strings.Join(lines, " | "), errdefs.ErrGuest)
	}
	return fmt.Errorf("%s: %v: %w", fn, err, errdefs.ErrGuest)
}

func deadline(ctx context.Context, cfg engine.InstanceConfig, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = cfg.Timeout
	}
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return context.WithCancel(ctx)
}
