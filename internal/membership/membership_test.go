package membership

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/thaw-run/thaw/internal/cluster"
)

func open(t *testing.T, opts Options) *Membership {
	t.Helper()
	n, err := cluster.Start(context.Background(), cluster.Options{DataDir: t.TempDir(), NodeID: "self"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m, err := Open(ctx, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond until it holds or a generous bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeadWorkerExpires: a worker that stops heart-beating leaves the
// view, and its entry leaves the bucket; a running one stays.
func TestDeadWorkerExpires(t *testing.T) {
	m := open(t, Options{TTL: time.Second, PublishInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx, func() Worker {
		return Worker{Address: "127.0.0.1:1", Slots: 4, Functions: []Function{{Name: "f", Idle: 1}}}
	})
	// A worker that announced itself once and died.
	b, _ := json.Marshal(Worker{ID: "dead", Address: "127.0.0.1:2"})
	if _, err := m.kv.Put(ctx, "dead", b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both workers in the view", func() bool { return len(m.State().Workers) == 2 })
	self, ok := m.State().Worker("self")
	if !ok || self.Slots != 4 || len(self.Functions) != 1 || self.Functions[0].Idle != 1 {
		t.Fatalf("self entry %+v", self)
	}
	waitFor(t, "the dead worker leaves the view", func() bool {
		_, ok := m.State().Worker("dead")
		return !ok
	})
	waitFor(t, "the dead worker's entry leaves the bucket", func() bool {
		_, err := m.kv.Get(ctx, "dead")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	if _, ok := m.State().Worker("self"); !ok {
		t.Fatal("the heart-beating worker left the view")
	}
	// A clean stop removes the entry at once.
	cancel()
	waitFor(t, "a stopped worker's entry is deleted", func() bool {
		_, err := m.kv.Get(context.Background(), "self")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}

// TestDrainFlag: a drain request reaches the view and the drained
// worker's entry; undrain reverses it.
func TestDrainFlag(t *testing.T) {
	m := open(t, Options{PublishInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx, func() Worker { return Worker{Draining: m.Draining("self")} })
	waitFor(t, "self in the view", func() bool { _, ok := m.State().Worker("self"); return ok })
	if err := m.SetDrain(ctx, "self", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "self draining", func() bool { w, _ := m.State().Worker("self"); return w.Draining })
	if err := m.SetDrain(ctx, "self", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "self undrained", func() bool { w, _ := m.State().Worker("self"); return !w.Draining })
	if err := m.SetDrain(ctx, "a.b", true); err == nil {
		t.Fatal("drain of an invalid id accepted")
	}
}

// TestCoreHeartbeat: a worker heard only on the core heartbeat subject
// (its KV writes failing, as while JetStream elects a stream leader) stays
// in the view, in the state it sends, as long as it beats, and leaves a
// TTL after it stops; once its entry is deleted (a clean stop), a late
// heartbeat does not bring it back. A heartbeat on another worker's
// subject is ignored.
func TestCoreHeartbeat(t *testing.T) {
	const ttl = time.Second
	m := open(t, Options{TTL: ttl, PublishInterval: 50 * time.Millisecond})
	beat := func(subject string, w Worker) {
		t.Helper()
		b, _ := json.Marshal(w)
		if err := m.conn.Publish(subject, b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 25 { // 2.5 TTLs
		beat(HeartbeatPrefix+"core", Worker{ID: "core", Slots: i + 1})
		time.Sleep(ttl / 10)
		if w, ok := m.State().Worker("core"); i > 0 && (!ok || w.Slots == 0) {
			t.Fatalf("after %d heartbeats: %+v, %v; want the worker, as it announced", i+1, w, ok)
		}
	}
	waitFor(t, "the silent worker leaves the view", func() bool { _, ok := m.State().Worker("core"); return !ok })

	beat(HeartbeatPrefix+"other", Worker{ID: "forged"})
	ctx := context.Background()
	b, _ := json.Marshal(Worker{ID: "gone"})
	if _, err := m.kv.Put(ctx, "gone", b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the KV entry in the view", func() bool { _, ok := m.State().Worker("gone"); return ok })
	if err := m.kv.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted worker leaves the view", func() bool { _, ok := m.State().Worker("gone"); return !ok })
	beat(HeartbeatPrefix+"gone", Worker{ID: "gone"})
	if err := m.conn.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the subscription's delivery
	for _, id := range []string{"gone", "forged", "other"} {
		if _, ok := m.State().Worker(id); ok {
			t.Fatalf("%s is in the view: %+v", id, m.State())
		}
	}
}
