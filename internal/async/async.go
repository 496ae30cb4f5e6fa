// Package async runs invocations asynchronously, as Lambda's Event
// invocation type and OpenFaaS's async route do: an invocation is accepted
// into a durable JetStream work queue and answered at once with an id; a
// Runner on some worker with spare capacity runs it later; its result is
// kept in a JetStream KV bucket, retrievable by id until it expires.
//
// # Lifecycle of an invocation
//
//	Enqueue ──► pending ──► running ──► done
//	               ▲           │
//	               └───────────┤ (handler error, attempts left: retried)
//	                           └──────► failed (attempts exhausted, expired)
//
// Queue.Enqueue writes a pending Result under the id, then publishes the
// invocation to the stream with the id as its Nats-Msg-Id. A Runner pulls
// invocations from the stream's one durable consumer (shared by every
// worker: JetStream hands each message to one of them), marks the result
// running, calls its Handler while telling JetStream the message is in
// progress, and writes the final Result before it acknowledges the message.
//
// # Guarantees
//
// Delivery is at least once. A worker that dies mid-invocation stops
// sending in-progress heartbeats; after AckWait JetStream redelivers the
// invocation to another runner, which runs it again: functions run
// asynchronously should be idempotent (or use the invocation id, passed in
// the Thaw-Invocation-Id header by the server, to detect repeats). The
// final Result, however, is written exactly once: every state change is a
// compare-and-swap on the KV entry, and no runner changes an entry that is
// already done or failed, so a late finisher cannot overwrite the first.
//
// An invocation is tried at most Config.MaxAttempts times, counting
// deliveries: a handler error is retried after RetryDelay, and a worker lost
// mid-run costs an attempt. When the attempts are spent the Result is
// failed, with the last handler error or "worker lost" as the reason; the
// consumer allows one delivery more than MaxAttempts so that some runner is
// always there to record that.
//
// Enqueue is idempotent by id: a client that retries with the same id (an
// idempotency key) gets the same invocation. Within Config.Duplicates the
// stream drops the second message; after it, the runner finds the final
// Result and skips the run. The first Enqueue's content wins.
//
// # Limits
//
// A request body is at most Config.MaxBody bytes (DefaultMaxBody, 256 KiB:
// Lambda's long-standing limit for an Event payload; NATS's default maximum
// message is 1 MiB, and every byte of a queued invocation is stored
// Replicas times); a result body is cut at Config.MaxResultBody, and the
// Result says so. The queue holds at most Config.MaxQueued invocations
// (Enqueue then fails with errdefs.ErrOverloaded); an invocation that waited
// longer than Config.MaxEventAge fails unrun, and Results expire
// Config.ResultTTL after their last change.
package async

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Defaults of Config.
const (
	DefaultStream        = "THAW_ASYNC"
	DefaultSubject       = "thaw.async.invocations"
	DefaultConsumer      = "thaw-async-runners"
	DefaultBucket        = "thaw_async_results"
	DefaultMaxBody       = 256 << 10
	DefaultMaxResultBody = 256 << 10
	DefaultMaxQueued     = 100_000
	DefaultMaxEventAge   = 6 * time.Hour
	DefaultResultTTL     = 24 * time.Hour
	DefaultDuplicates    = 10 * time.Minute
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAttempts   = 3
	DefaultRetryDelay    = 10 * time.Second
)

// metaReserve is the room left in a NATS message for everything but the
// body: the invocation's metadata and headers (queued) or the Result's
// fields and the base64 expansion of its body (in the KV).
const metaReserve = 64 << 10

// Config configures the queue. The zero value of each field takes its
// default; every worker of a cluster must use the same Config (the stream,
// bucket and consumer are created or updated to match it by Open).
type Config struct {
	// Stream, Subject and Consumer name the work-queue stream, the subject
	// invocations are published on and the durable consumer the runners
	// share; Bucket names the KV bucket of results.
	Stream, Subject, Consumer, Bucket string
	// Replicas is the number of copies JetStream keeps of the stream and
	// the bucket (1 on one node; 3 in a three-node cluster).
	Replicas int
	// MaxBody bounds a request body, MaxResultBody a stored response body.
	MaxBody, MaxResultBody int
	// MaxQueued bounds the invocations waiting in the stream.
	MaxQueued int64
	// MaxEventAge is how long an invocation may wait before it fails
	// unrun (Lambda's maximum event age).
	MaxEventAge time.Duration
	// ResultTTL is how long a Result is kept after its last change.
	ResultTTL time.Duration
	// Duplicates is the stream's window for dropping a message whose id
	// was already published.
	Duplicates time.Duration
	// AckWait is how long a delivery may go without an acknowledgement
	// or heartbeat before JetStream gives it to another runner.
	AckWait time.Duration
	// MaxAttempts bounds the runs of one invocation; RetryDelay is the
	// wait before a run that failed is retried.
	MaxAttempts int
	RetryDelay  time.Duration
}

func (c *Config) setDefaults() {
	setDefault(&c.Stream, DefaultStream)
	setDefault(&c.Subject, DefaultSubject)
	setDefault(&c.Consumer, DefaultConsumer)
	setDefault(&c.Bucket, DefaultBucket)
	setDefault(&c.Replicas, 1)
	setDefault(&c.MaxBody, DefaultMaxBody)
	setDefault(&c.MaxResultBody, DefaultMaxResultBody)
	setDefault(&c.MaxQueued, DefaultMaxQueued)
	setDefault(&c.MaxEventAge, DefaultMaxEventAge)
	setDefault(&c.ResultTTL, DefaultResultTTL)
	setDefault(&c.Duplicates, DefaultDuplicates)
	setDefault(&c.AckWait, DefaultAckWait)
	setDefault(&c.MaxAttempts, DefaultMaxAttempts)
	setDefault(&c.RetryDelay, DefaultRetryDelay)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Invocation is one queued request.
type Invocation struct {
	// ID names the invocation and its Result: random unless the client
	// gave an idempotency key (see ValidID).
	ID       string      `json:"id"`
	Function string      `json:"function"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Query    string      `json:"query,omitempty"`
	Header   http.Header `json:"header,omitempty"`
	Body     []byte      `json:"-"`
	// Enqueued is set by Enqueue.
	Enqueued time.Time `json:"enqueued"`
	// Attempt is the delivery being run, from 1; set by the Runner.
	Attempt int `json:"-"`
}

// Queue is the producer's and reader's side of the queue: Enqueue and
// Results. It is safe for concurrent use.
type Queue struct {
	cfg     Config
	js      jetstream.JetStream
	cons    jetstream.Consumer
	Results *Results
}

// Open creates (or updates to cfg) the stream, the results bucket and the
// runners' consumer, and returns the queue. Every worker calls it at start
// with the same cfg.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Queue, error) {
	cfg.setDefaults()
	if cfg.MaxAttempts < 1 || cfg.Replicas < 1 || cfg.MaxBody < 0 || cfg.MaxResultBody < 0 {
		return nil, fmt.Errorf("async: bad config: %w", errdefs.ErrInvalid)
	}
	if limit := js.Conn().MaxPayload() - metaReserve; int64(cfg.MaxBody) > limit || int64(cfg.MaxResultBody)*4/3 > limit {
		return nil, fmt.Errorf("async: body limits %d and %d do not fit in the server's %d-byte messages: %w",
			cfg.MaxBody, cfg.MaxResultBody, js.Conn().MaxPayload(), errdefs.ErrInvalid)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "thaw asynchronous invocations",
		Subjects:    []string{cfg.Subject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxMsgs:     cfg.MaxQueued,
		Discard:     jetstream.DiscardNew,
		Duplicates:  cfg.Duplicates,
	}); err != nil {
		return nil, fmt.Errorf("async: stream %s: %w", cfg.Stream, unavailable(err))
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "thaw asynchronous invocation results",
		TTL:         cfg.ResultTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("async: bucket %s: %w", cfg.Bucket, unavailable(err))
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		Description:   "thaw asynchronous invocation runners",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxAttempts + 1, // the last delivery records the failure
		MaxAckPending: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("async: consumer %s: %w", cfg.Consumer, unavailable(err))
	}
	return &Queue{cfg: cfg, js: js, cons: cons, Results: &Results{kv: kv, maxBody: cfg.MaxResultBody}}, nil
}

// Config returns the queue's configuration, defaults filled in.
func (q *Queue) Config() Config { return q.cfg }

// Enqueue queues inv and returns its id: inv.ID if set (a client's
// idempotency key, which must pass ValidID), else a new random one. It
// fails with errdefs.ErrTooLarge when the body exceeds Config.MaxBody,
// errdefs.ErrInvalid for a bad id or no function, errdefs.ErrOverloaded
// when the queue is full and errdefs.ErrUnavailable when NATS is.
//
// The invocation is durable (stored by the stream on Replicas nodes) when
// Enqueue returns nil. Enqueueing an id again is not an error and does not
// run it twice (see the package documentation).
func (q *Queue) Enqueue(ctx context.Context, inv Invocation) (string, error) {
	if inv.Function == "" {
		return "", fmt.Errorf("async: no function: %w", errdefs.ErrInvalid)
	}
	if len(inv.Body) > q.cfg.MaxBody {
		return "", fmt.Errorf("async: request body of %d bytes exceeds the %d-byte limit of an asynchronous invocation: %w",
			len(inv.Body), q.cfg.MaxBody, errdefs.ErrTooLarge)
	}
	if inv.ID == "" {
		inv.ID = NewID()
	} else if err := ValidID(inv.ID); err != nil {
		return "", err
	}
	inv.Enqueued = time.Now().UTC()
	data, err := encode(&inv)
	if err != nil {
		return "", err
	}
	created, err := q.Results.create(ctx, &Result{ID: inv.ID, State: StatePending, Function: inv.Function, Enqueued: inv.Enqueued})
	if err != nil {
		return "", err
	}
	if _, err := q.js.Publish(ctx, q.cfg.Subject, data, jetstream.WithMsgID(inv.ID), jetstream.WithExpectStream(q.cfg.Stream)); err != nil {
		if created {
			// Best effort: a pending entry for an invocation that was
			// never queued would otherwise say pending until it expires.
			_ = q.Results.kv.Delete(context.WithoutCancel(ctx), inv.ID)
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFailed {
			return "", fmt.Errorf("async: queue full: %v: %w", err, errdefs.ErrOverloaded)
		}
		return "", fmt.Errorf("async: enqueue %s: %w", inv.ID, unavailable(err))
	}
	return inv.ID, nil
}

// NewID returns a new random invocation id: 22 URL-safe characters (127
// random bits) that start with a letter, so that no command line takes one
// for a flag (`thaw result -x...` would: one id in 64 started with '-').
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[0] &^= 0x80          // the first character encodes b[0]>>2: 0-31, 'A'-'Z' or 'a'-'f'
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidID checks a client-chosen id: 1 to 64 letters, digits, '-' and '_'
// (URL-safe, and a valid KV key and message id).
func ValidID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("async: invocation id of %d characters (want 1 to 64): %w", len(id), errdefs.ErrInvalid)
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("async: invocation id %q: character %q not allowed: %w", id, c, errdefs.ErrInvalid)
		}
	}
	return nil
}

// errCodeStoreFailed is JetStream's error code for a message the stream
// would not store; with DiscardNew and MaxMsgs, "maximum messages
// exceeded" (nats-server's JSStreamStoreFailedF, which the client does
// not name).
const errCodeStoreFailed jetstream.ErrorCode = 10077

// unavailable wraps a NATS error as errdefs.ErrUnavailable, unless the
// context ended.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
}

// Backlog returns the invocations waiting in the queue for a runner and
// those delivered to a runner and not yet finished, cluster-wide (the
// consumer's pending and ack-pending counts).
func (q *Queue) Backlog(ctx context.Context) (waiting, running int64, err error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("async: consumer %s: %w", q.cfg.Consumer, unavailable(err))
	}
	return int64(info.NumPending), int64(info.NumAckPending), nil
}
