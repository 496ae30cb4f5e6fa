package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestNodeIDStable(t *testing.T) {
	dir := t.TempDir()
	a, err := NodeID(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NodeID(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if a != b || ValidID(a) != nil {
		t.Fatalf("ids %q, %q: want one valid id across calls", a, b)
	}
	c, err := NodeID(dir, "given")
	if err != nil || c != "given" {
		t.Fatalf("NodeID(given) = %q, %v", c, err)
	}
	if d, _ := NodeID(dir, ""); d != "given" {
		t.Fatalf("after --node-id given, stored id is %q", d)
	}
	for _, bad := range []string{"a.b", "a b", "*", "", "-x"} {
		if ValidID(bad) == nil {
			t.Errorf("ValidID(%q) = nil", bad)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("bad id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NodeID(dir, ""); err == nil {
		t.Fatal("a damaged node-id file was accepted")
	}
}

// TestEmbeddedAlone starts the node a plain `thaw serve` runs: no port,
// JetStream under the data directory, data kept across a restart.
func TestEmbeddedAlone(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, err := Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n.ClientURL() != "" || n.ClusterAddr() != "" {
		t.Errorf("alone node listens: client %q, cluster %q", n.ClientURL(), n.ClusterAddr())
	}
	kv, err := n.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if _, err := os.Stat(filepath.Join(dir, "nats")); err != nil {
		t.Fatalf("no JetStream directory in the data dir: %v", err)
	}
	n, err = Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	kv, err = n.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: "t"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "k")
	if err != nil || string(e.Value()) != "v" {
		t.Fatalf("after restart: %v, %v", e, err)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{DataDir: t.TempDir(), Peers: []string{"127.0.0.1:1"}},
		{DataDir: t.TempDir(), ClusterListen: "nohostport"},
		{DataDir: t.TempDir(), ClusterListen: "127.0.0.1:0", Peers: []string{"x:y"}},
		{DataDir: t.TempDir(), NodeID: "bad id"},
	} {
		if n, err := Start(context.Background(), o); err == nil {
			n.Close()
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

// TestThreeNodesLoseOne forms a three-node cluster on loopback ports,
// writes to a replicated bucket, stops one node, and checks that the
// bucket takes writes again (within a generous bound) and kept its data.
func TestThreeNodesLoseOne(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a cluster")
	}
	addrs, err := LoopbackAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*Node, 3)
	errs := make(chan error, 3)
	for i := range nodes {
		go func() {
			n, err := Start(context.Background(), Options{DataDir: t.TempDir(), NodeID: fmt.Sprintf("n%d", i),
				ClusterListen: addrs[i], Peers: addrs})
			nodes[i] = n
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	}()
	if nodes[0].Replicas != 3 {
		t.Fatalf("replicas %d, want 3", nodes[0].Replicas)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := nodes[0].KeyValue(ctx, jetstream.KeyValueConfig{Bucket: "r"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Fatalf("bucket status %v, %v: want 3 replicas", st, err)
	}
	if _, err := kv.Put(ctx, "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// Stop the stream's leader, the worst case.
	leader := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Cluster.Leader
	var survivor *Node
	for i, n := range nodes {
		if n.ID == leader {
			n.Close()
			nodes[i] = nil
		} else if survivor == nil {
			survivor = n
		}
	}
	if survivor == nil || survivor == nodes[0] && leader == "n0" {
		t.Fatalf("leader %q not among the nodes", leader)
	}
	kv2, err := survivor.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: "r"})
	if err != nil {
		t.Fatal(err)
	}
	var rev uint64
	for {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		rev, err = kv2.Put(actx, "k", []byte("2"))
		acancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("bucket never writable again after losing %s: %v", leader, err)
		}
	}
	if rev != 2 {
		t.Fatalf("write after losing a node got revision %d, want 2 (the first write kept)", rev)
	}
	// Direct gets may be answered by a replica that has not applied the
	// write yet: it becomes visible, not necessarily at once.
	for {
		e, err := kv2.Get(ctx, "k")
		if err == nil && string(e.Value()) == "2" && e.Revision() == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after losing a node: %v, %v", e, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The embedded server runs with thaw's raft timings (raft.go), not
// nats-server's defaults: what lets the registry take writes again within
// 2 s of losing the node that led it (measured in the netns cluster's
// KillUnderLoad).
func TestRaftTimings(t *testing.T) {
	n, err := Start(context.Background(), Options{DataDir: t.TempDir(), NodeID: "n0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	got := []time.Duration{raftHeartbeat, raftMinElection, raftMaxElection, raftLostQuorum, raftLostQuorumCheck}
	want := []time.Duration{RaftHeartbeat, RaftMinElection, RaftMaxElection, RaftLostQuorum, RaftLostQuorumCheck}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("timing %d: %v, want %v", i, got[i], want[i])
		}
	}
	if RaftMinElection < 10*RaftHeartbeat || RaftMaxElection <= RaftMinElection {
		t.Errorf("elections after %v-%v with heartbeats every %v: a busy follower would unseat a live leader", RaftMinElection, RaftMaxElection, RaftHeartbeat)
	}
}
