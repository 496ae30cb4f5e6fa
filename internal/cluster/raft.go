package cluster

import (
	"sync"
	"time"
	_ "unsafe" // go:linkname
)

// The raft timings of the embedded server.
//
// nats-server times its raft for clusters spread over data centres: a
// follower calls an election only after 4-9 s without a word from its
// leader, so a SIGKILLed node that led the registry's stream leaves the
// registry read-only for that long. thaw's nodes are one network apart,
// and the cluster's target is registry writes back within 2 s of losing
// a node; etcd, for comparison, heartbeats every 100 ms and elects after
// 1 s by default. nats-server has no option for these, so thaw sets the
// package variables that hold them, as nats-server's own test suite does
// (server/jetstream_helpers_test.go: 50 ms heartbeats, 1.5-3.5 s
// elections). If a later nats-server renames them the build fails here;
// TestRaftTimings checks that the values reach the server.
//
// These apply to the servers thaw embeds, not to an external NATS.
//
//go:linkname raftHeartbeat github.com/nats-io/nats-server/v2/server.hbInterval
var raftHeartbeat time.Duration

//go:linkname raftMinElection github.com/nats-io/nats-server/v2/server.minElectionTimeout
var raftMinElection time.Duration

//go:linkname raftMaxElection github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var raftMaxElection time.Duration

//go:linkname raftLostQuorum github.com/nats-io/nats-server/v2/server.lostQuorumInterval
var raftLostQuorum time.Duration

//go:linkname raftLostQuorumCheck github.com/nats-io/nats-server/v2/server.lostQuorumCheck
var raftLostQuorumCheck time.Duration

// The timings thaw's embedded servers run with.
const (
	// RaftHeartbeat is how often a leader tells its followers it lives
	// (nats-server: 1 s).
	RaftHeartbeat = 100 * time.Millisecond
	// RaftMinElection and RaftMaxElection bound the randomised silence
	// after which a follower calls an election (nats-server: 4-9 s):
	// ten heartbeats at least, so that a follower on a busy 2-core
	// machine does not unseat a live leader, and an election done well
	// within 2 s of the leader's death.
	RaftMinElection = 1000 * time.Millisecond
	RaftMaxElection = 1400 * time.Millisecond
	// RaftLostQuorum is how long a leader that hears from no majority
	// keeps calling itself leader (nats-server: 10 s); it checks every
	// RaftLostQuorumCheck.
	RaftLostQuorum      = 5 * time.Second
	RaftLostQuorumCheck = 4 * RaftHeartbeat
)

var raftOnce sync.Once

// tuneRaft sets the timings, once per process, before the first embedded
// server starts (its raft groups read them as they run).
func tuneRaft() {
	raftOnce.Do(func() {
		raftHeartbeat = RaftHeartbeat
		raftMinElection, raftMaxElection = RaftMinElection, RaftMaxElection
		raftLostQuorum, raftLostQuorumCheck = RaftLostQuorum, RaftLostQuorumCheck
	})
}
