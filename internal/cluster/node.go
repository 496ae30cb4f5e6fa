// Package cluster is a thaw process's node in the NATS system that the
// cluster's shared state lives in: an embedded NATS server with JetStream
// (or a connection to an external one) and the connection the rest of
// thaw uses.
//
// # Why NATS
//
// thaw needs a replicated registry with compare-and-swap and watches,
// presence with expiry, and request/reply with an immediate "no
// responders" between workers. NATS gives all of these (JetStream KV and
// Object Store, core request/reply) and embeds in the Go binary, so one
// code path serves one node and many: a plain `thaw serve` runs a server
// that listens on no port (DontListen) and talks to it in-process; a
// cluster is the same server with a route listener and peers.
//
// This package knows nothing about functions; internal/registry and
// internal/membership keep their state in the buckets it opens, and
// internal/coord ties them to the worker.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Options say how a node joins: embedded alone (the zero value plus
// DataDir), embedded in a cluster of thaw processes (ClusterListen and
// Peers), or connected to an external NATS (URL).
type Options struct {
	// DataDir is the worker's data directory: JetStream keeps its data in
	// DataDir/nats and the node id is stored in DataDir/node-id.
	DataDir string
	// NodeID names this worker (and its embedded server); empty: the one
	// stored in DataDir, else one made from the hostname (NodeID).
	NodeID string
	// ClusterListen is the HOST:PORT the embedded server accepts routes
	// from other thaw processes on; empty: no cluster.
	ClusterListen string
	// Peers are the route addresses (HOST:PORT) of the other nodes; this
	// node's own ClusterListen may be among them.
	Peers []string
	// ClientListen, if set, is a HOST:PORT on which the embedded server
	// accepts NATS clients (a gateway, a CLI); empty: in-process only, or
	// a random loopback port in a cluster (nats-server routes only once
	// it has a client listener).
	ClientListen string
	// URL, if set, connects to an external NATS instead of embedding one.
	URL string
	// Logger receives the node's logs (default slog.Default()).
	Logger *slog.Logger
}

// Node is a running NATS node: the embedded server (nil with an external
// NATS) and a connection to it.
type Node struct {
	// ID is the node id: the worker's name in the cluster.
	ID string
	// Replicas is the replica count for buckets: one per node, at most 3.
	// Two nodes keep two replicas: the survivor of a pair then still
	// holds the registry (and refuses writes without the quorum) rather
	// than losing it with the node that happened to hold the one copy.
	Replicas int
	// Conn is the connection; JS its JetStream context.
	Conn *nats.Conn
	JS   jetstream.JetStream

	srv *server.Server
	log *slog.Logger
	url string // the external NATS, if any
}

// MaxPayload is the embedded server's largest message.
const MaxPayload = 16 << 20

// startTimeout bounds how long the embedded server may take to accept
// connections.
const startTimeout = 10 * time.Second

// Start starts (or connects to) the NATS node that opts describe.
func Start(ctx context.Context, opts Options) (*Node, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	id, err := NodeID(opts.DataDir, opts.NodeID)
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, Replicas: 1, log: log, url: opts.URL}
	if opts.URL != "" {
		// The same pings on a connection to an external NATS: a server
		// that went silent is left for another of the URL's in seconds.
		n.Conn, err = nats.Connect(opts.URL, nats.Name("thaw-"+id), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
			nats.PingInterval(routePing), nats.MaxPingsOutstanding(routeMaxPingsOut))
		if err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %v: %w", opts.URL, err, errdefs.ErrUnavailable)
		}
		// The servers the connection knows of, discovered ones included.
		n.Replicas = max(1, min(len(n.Conn.Servers()), 3))
	} else {
		if err := n.embed(opts); err != nil {
			return nil, err
		}
	}
	n.JS, err = jetstream.New(n.Conn)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return n, nil
}

// routePing and routeMaxPingsOut bound how long a silent peer (a route,
// or the server of a --nats-url connection) counts as alive.
const (
	routePing        = time.Second
	routeMaxPingsOut = 3
)

// embed starts the embedded server and connects to it in-process.
func (n *Node) embed(opts Options) error {
	if opts.DataDir == "" {
		return fmt.Errorf("cluster: no data directory: %w", errdefs.ErrInvalid)
	}
	so := &server.Options{
		ServerName: n.ID,
		JetStream:  true,
		StoreDir:   filepath.Join(opts.DataDir, "nats"),
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
		// Forwarded invocations carry bodies of up to 6 MiB (base64 in
		// JSON); NATS's default bound is 1 MiB.
		MaxPayload: MaxPayload,
	}
	clientListen := opts.ClientListen
	if clientListen == "" && opts.ClusterListen != "" {
		// A clustered server routes only once its client listener is up,
		// so it always has one: on loopback, unless given.
		clientListen = "127.0.0.1:0"
	}
	if clientListen != "" {
		host, port, err := splitHostPort(clientListen)
		if err != nil {
			return fmt.Errorf("--nats-listen: %w", err)
		}
		so.DontListen, so.Host, so.Port = false, host, natsPort(port)
	}
	if opts.ClusterListen != "" {
		host, port, err := splitHostPort(opts.ClusterListen)
		if err != nil {
			return fmt.Errorf("--cluster-listen: %w", err)
		}
		// Routes ping every second and give up after three unanswered
		// pings: a peer cut off without a word (a partition, a cable)
		// is dropped in ~4 s rather than NATS's default of minutes, and
		// the route is redialled every second, so a healed partition
		// rejoins in about a second instead of waiting out TCP's
		// retransmission backoff on the stale connection (18 s measured
		// in the netns partition scenario before).
		so.Cluster = server.ClusterOpts{Name: "thaw", Host: host, Port: natsPort(port), PingInterval: routePing, MaxPingsOut: routeMaxPingsOut}
		self := opts.ClusterListen
		nodes := 1
		for _, p := range opts.Peers {
			if p == "" || p == self {
				continue
			}
			if _, _, err := splitHostPort(p); err != nil {
				return fmt.Errorf("--cluster-peers: %w", err)
			}
			so.Routes = append(so.Routes, &url.URL{Scheme: "nats-route", Host: p})
			nodes++
		}
		n.Replicas = min(nodes, 3)
	} else if len(opts.Peers) > 0 {
		return fmt.Errorf("--cluster-peers needs --cluster-listen: %w", errdefs.ErrInvalid)
	}
	tuneRaft()
	srv, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("embedded NATS: %v: %w", err, errdefs.ErrInvalid)
	}
	srv.Start()
	if !srv.ReadyForConnections(startTimeout) {
		srv.Shutdown()
		return fmt.Errorf("embedded NATS did not start within %s: %w", startTimeout, errdefs.ErrUnavailable)
	}
	n.srv = srv
	conn, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("thaw-"+n.ID), nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return fmt.Errorf("connect to embedded NATS: %w", err)
	}
	n.Conn = conn
	return nil
}

// ClientURL is the URL NATS clients reach the embedded server on, or ""
// when it accepts none (or the node is external).
func (n *Node) ClientURL() string {
	if n.srv == nil || n.srv.Addr() == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// ConnectURL is the URL another process of this host (a pager child)
// connects to this node's NATS at: the embedded server's client listener
// or the external NATS; "" when the embedded server accepts no clients (a
// cluster of one).
func (n *Node) ConnectURL() string {
	if n.url != "" {
		return n.url
	}
	return n.ClientURL()
}

// ClusterAddr is the address the embedded server accepts routes on, or
// "" without a cluster (useful with port 0).
func (n *Node) ClusterAddr() string {
	if n.srv == nil || n.srv.ClusterAddr() == nil {
		return ""
	}
	return n.srv.ClusterAddr().String()
}

// Close closes the connection and shuts the embedded server down.
func (n *Node) Close() {
	if n.Conn != nil {
		n.Conn.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// splitHostPort parses HOST:PORT with a numeric port (0: any free port).
func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %v: %w", addr, err, errdefs.ErrInvalid)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port: %w", addr, errdefs.ErrInvalid)
	}
	return host, port, nil
}

// natsPort is port as nats-server options take it: there 0 is the
// default port and -1 a random one.
func natsPort(port int) int {
	if port == 0 {
		return server.RANDOM_PORT
	}
	return port
}

// nodeIDFile holds the node id in the data directory.
const nodeIDFile = "node-id"

// idRE is what a node id may be: it is a NATS server name and a KV key
// and subject token, so no dots, spaces or wildcards.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ValidID checks a node id.
func ValidID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("node id %q: want 1-63 letters, digits, '-' or '_': %w", id, errdefs.ErrInvalid)
	}
	return nil
}

// NodeID returns the node id: want if set (stored for next time), else
// the id stored in dataDir, else a new one made of the hostname and a
// random suffix, stored so that it is stable across restarts. Without a
// data directory nothing is stored.
func NodeID(dataDir, want string) (string, error) {
	path := filepath.Join(dataDir, nodeIDFile)
	if want == "" && dataDir != "" {
		if b, err := atomicfile.ReadFile(path, 256); err == nil {
			id := strings.TrimSpace(string(b))
			if err := ValidID(id); err != nil {
				return "", fmt.Errorf("%s: %w", path, err)
			}
			return id, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("read node id: %w", err)
		}
	}
	id := want
	if id == "" {
		id = hostID()
	}
	if err := ValidID(id); err != nil {
		return "", err
	}
	if dataDir == "" {
		return id, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("store node id: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(id+"\n"), 0o600); err != nil && !errors.Is(err, atomicfile.ErrDirNotSynced) {
		return "", fmt.Errorf("store node id: %w", err)
	}
	return id, nil
}

// hostID is the hostname's first label, reduced to the id alphabet, plus
// a random suffix: two data directories on one host are two workers.
func hostID() string {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	h := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, host)
	if len(h) > 40 {
		h = h[:40]
	}
	if !idRE.MatchString(h) {
		h = "thaw"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return h + "-" + hex.EncodeToString(b[:])
}
