package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Options configure Run.
type Options struct {
	// BaseURL is the thaw server, e.g. "http://127.0.0.1:8080". Every
	// request goes to BaseURL/fn/{function}{Path} and nowhere else:
	// redirects are not followed.
	BaseURL string
	// BaseURLs, if set, replaces BaseURL with several entry points (the
	// workers of a cluster), spread over as a layer-4 balancer would:
	// each request goes to the next one in turn, or to one at random
	// (Spread). A request whose connection is refused was never
	// delivered, and goes to the next entry point instead, trying each
	// at most once.
	BaseURLs []string
	// Spread is how requests pick an entry point: SpreadRoundRobin (the
	// default) or SpreadRandom, drawn from Seed.
	Spread string
	Seed   uint64
	// Endpoints, if set, asks every entry point before and after the run
	// which worker it is (GET /v1/cluster, with Header) and how many bytes
	// its snapshot store read, by tier (thaw_store_tier_bytes_total in
	// its /metrics), into Result.Endpoints. Failures leave the fields
	// empty.
	Endpoints bool
	// Schedule is the open-loop schedule, sorted by At.
	Schedule []Arrival
	// Path is appended to /fn/{function}; default "/".
	Path string
	// Method defaults to GET, or POST when Body is set.
	Method string
	// Body is sent with every request.
	Body []byte
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// MaxInFlight bounds concurrent requests; an arrival finding it reached
	// is dropped, not delayed. Default 64.
	MaxInFlight int
	// MaxRequests stops the run after this many arrivals (0: no limit).
	MaxRequests int
	// MaxDuration stops scheduling arrivals at or after this offset
	// (0: no limit). Requests in flight are still awaited.
	MaxDuration time.Duration
	// Timeout bounds each request, default 30s.
	Timeout time.Duration
	// Client is the HTTP client; nil uses a fresh one with a transport
	// sized to MaxInFlight.
	Client *http.Client
	// MetricsURL, if set, is scraped every MetricsInterval (default 1s)
	// for the server's memory use (see MemoryMetrics). Scrape failures are
	// tolerated and counted.
	MetricsURL      string
	MetricsInterval time.Duration
	// Progress, if set, is called after every arrival is settled (answered,
	// failed or dropped) with the number settled and the total. It is called
	// from several goroutines, never concurrently.
	Progress func(done, total int)
}

// Record is what happened to one scheduled invocation. Times are
// milliseconds; ScheduledMs and SentMs are offsets from the run's start.
type Record struct {
	Seq         int     `json:"seq"`
	Function    string  `json:"function"`
	ScheduledMs float64 `json:"scheduled_ms"`
	// SentMs minus ScheduledMs is the generator's own lag.
	SentMs    float64 `json:"sent_ms"`
	LatencyMs float64 `json:"latency_ms"`
	// Status is the HTTP status, 0 when no response came (see Error) or
	// the request was dropped.
	Status  int    `json:"status"`
	Dropped bool   `json:"dropped,omitempty"`
	Error   string `json:"error,omitempty"`
	// Bytes is the response body size.
	Bytes int64 `json:"bytes"`
	// HasTiming says whether the response carried a Server-Timing header.
	HasTiming bool `json:"has_timing"`
	// Entry is the entry point (an Options.BaseURLs index) the request
	// was delivered to, or last tried; Refused counts the entry points
	// that refused its connection before.
	Entry   int `json:"entry"`
	Refused int `json:"refused,omitempty"`
	// api.Timing's Worker names the worker that served the request (from
	// Server-Timing, else the X-Thaw-Node header).
	api.Timing
}

// OK reports whether the invocation got a 2xx response.
func (r *Record) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Result is the outcome of a run.
type Result struct {
	// Started is the wall-clock time of offset 0.
	Started time.Time
	// Elapsed runs until the last response.
	Elapsed time.Duration
	// Records has one entry per scheduled arrival, in schedule order.
	Records []Record
	// Dropped counts arrivals not sent because MaxInFlight was reached.
	Dropped int
	// Memory holds the memory samples taken during the run.
	Memory []MemorySample
	// ScrapeErrors counts failed /metrics scrapes.
	ScrapeErrors int
	// Entries are the entry points, in Options order; Endpoints what
	// they reported (Options.Endpoints), in the same order.
	Entries   []string
	Endpoints []Endpoint
}

// The ways Options.Spread picks an entry point.
const (
	SpreadRoundRobin = "round-robin"
	SpreadRandom     = "random"
)

func (o *Options) validate() ([]*url.URL, error) {
	bases := o.BaseURLs
	if len(bases) == 0 {
		bases = []string{o.BaseURL}
	}
	var us []*url.URL
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("load: base URL %q: want http(s)://host[:port]: %w", b, errdefs.ErrInvalid)
		}
		us = append(us, u)
	}
	switch o.Spread {
	case "":
		o.Spread = SpreadRoundRobin
	case SpreadRoundRobin, SpreadRandom:
	default:
		return nil, fmt.Errorf("load: spread %q: want %s or %s: %w", o.Spread, SpreadRoundRobin, SpreadRandom, errdefs.ErrInvalid)
	}
	for i := 1; i < len(o.Schedule); i++ {
		if o.Schedule[i].At < o.Schedule[i-1].At {
			return nil, fmt.Errorf("load: schedule not sorted at arrival %d: %w", i, errdefs.ErrInvalid)
		}
	}
	if o.MaxInFlight < 0 || o.MaxRequests < 0 || o.MaxDuration < 0 || o.Timeout < 0 {
		return nil, fmt.Errorf("load: negative limit: %w", errdefs.ErrInvalid)
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 64
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Path == "" {
		o.Path = "/"
	} else if !strings.HasPrefix(o.Path, "/") {
		o.Path = "/" + o.Path
	}
	if o.Method == "" {
		o.Method = http.MethodGet
		if o.Body != nil {
			o.Method = http.MethodPost
		}
	}
	if o.MetricsInterval <= 0 {
		o.MetricsInterval = time.Second
	}
	return us, nil
}

// Run sends opts.Schedule to the server open-loop and returns every
// invocation's record. It returns early, with the records so far, when ctx
// is cancelled; errors of individual requests are recorded, not returned.
func Run(ctx context.Context, opts Options) (*Result, error) {
	bases, err := opts.validate()
	if err != nil {
		return nil, err
	}
	sched := opts.Schedule
	if opts.MaxRequests > 0 && len(sched) > opts.MaxRequests {
		sched = sched[:opts.MaxRequests]
	}
	if opts.MaxDuration > 0 {
		n := 0
		for n < len(sched) && sched[n].At < opts.MaxDuration {
			n++
		}
		sched = sched[:n]
	}
	client := opts.client()

	res := &Result{Records: make([]Record, len(sched))}
	for _, b := range bases {
		res.Entries = append(res.Entries, b.String())
	}
	var before []Endpoint
	if opts.Endpoints {
		before = observe(ctx, client, res.Entries, opts.Header)
	}
	pick := spreader(opts.Spread, len(bases), opts.Seed)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards done and Progress calls
		done     int
		inflight = make(chan struct{}, opts.MaxInFlight)
	)
	settle := func() {
		mu.Lock()
		done++
		if opts.Progress != nil {
			opts.Progress(done, len(sched))
		}
		mu.Unlock()
	}

	memCtx, stopMem := context.WithCancel(ctx)
	memDone := make(chan struct{})
	start := time.Now()
	res.Started = start
	go func() {
		defer close(memDone)
		if opts.MetricsURL != "" {
			res.Memory, res.ScrapeErrors = sampleMemory(memCtx, client, opts.MetricsURL, opts.MetricsInterval, start)
		}
	}()

	timer := time.NewTimer(0)
	<-timer.C
	n := 0
loop:
	for i, a := range sched {
		if wait := time.Until(start.Add(a.At)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break loop
		}
		n = i + 1
		rec := &res.Records[i]
		*rec = Record{Seq: i, Function: a.Function, ScheduledMs: ms(a.At)}
		select {
		case inflight <- struct{}{}:
		default:
			rec.Dropped = true
			rec.SentMs = ms(time.Since(start))
			res.Dropped++
			settle()
			continue
		}
		first := pick()
		targets := make([]string, len(bases))
		for k := range bases {
			base := bases[(first+k)%len(bases)]
			target := *base
			path, query, _ := strings.Cut(opts.Path, "?")
			target.Path = strings.TrimSuffix(base.Path, "/") + "/fn/" + url.PathEscape(a.Function) + path
			target.RawQuery = query
			targets[k] = target.String()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			for k, target := range targets {
				rec.Entry = (first + k) % len(bases)
				if !opts.send(ctx, client, target, rec, start) || k == len(targets)-1 {
					break
				}
				rec.Refused++
			}
			settle()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Records = res.Records[:n]
	stopMem()
	<-memDone
	if opts.Endpoints && ctx.Err() == nil {
		res.Endpoints = delta(before, observe(ctx, client, res.Entries, opts.Header))
	}
	if opts.MetricsURL != "" && ctx.Err() == nil {
		// One last sample at the end, so that even a run shorter than the
		// scrape interval reports the memory it left behind.
		if s, err := ScrapeMemory(ctx, client, opts.MetricsURL); err == nil {
			s.AtMs = ms(time.Since(start))
			res.Memory = append(res.Memory, s)
		} else {
			res.ScrapeErrors++
		}
	}
	return res, nil
}

func (o *Options) client() *http.Client {
	c := &http.Client{}
	if o.Client != nil {
		*c = *o.Client
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.MaxInFlight
		t.MaxConnsPerHost = 0
		c.Transport = t
	}
	// Never follow a redirect: the generator must only talk to BaseURL.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// send sends one request to target and records what happened; it reports
// whether the connection was refused (the request never delivered, so
// another entry point may take it).
func (o *Options) send(ctx context.Context, client *http.Client, target string, rec *Record, start time.Time) (refused bool) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var body io.Reader
	if o.Body != nil {
		body = bytes.NewReader(o.Body)
	}
	req, err := http.NewRequestWithContext(ctx, o.Method, target, body)
	if err != nil {
		rec.Error = err.Error()
		return false
	}
	for k, vs := range o.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	sent := time.Now()
	rec.SentMs = ms(sent.Sub(start))
	resp, err := client.Do(req)
	if err != nil {
		rec.LatencyMs = ms(time.Since(sent))
		rec.Error = err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			rec.Error = "timeout: " + rec.Error
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	rec.Error = ""
	// A failure's body is its reason: keep the start of it.
	var head []byte
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	}
	if err == nil {
		rec.Bytes, err = io.Copy(io.Discard, resp.Body)
		rec.Bytes += int64(len(head))
	}
	resp.Body.Close()
	rec.LatencyMs = ms(time.Since(sent))
	rec.Status = resp.StatusCode
	if err != nil {
		rec.Error = "reading body: " + err.Error()
	} else if len(head) > 0 {
		rec.Error = errorMessage(head)
	}
	if h := resp.Header.Get(api.HeaderServerTiming); h != "" {
		t, err := api.ParseTiming(h)
		if err != nil {
			slog.Debug("load: bad Server-Timing", "function", rec.Function, "err", err)
		} else {
			rec.Timing, rec.HasTiming = t, true
		}
	}
	if rec.Worker == "" {
		rec.Worker = resp.Header.Get(api.HeaderNode)
	}
	return false
}

// maxErrorBytes bounds what a Record keeps of a failure's body.
const maxErrorBytes = 512

// errorMessage is the message of a thaw error body ({"error": ...}), or
// the body itself.
func errorMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

// spreader returns the function that picks each request's first entry
// point out of n.
func spreader(how string, n int, seed uint64) func() int {
	if how == SpreadRandom {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		return func() int { return r.IntN(n) }
	}
	next := 0
	return func() int {
		i := next
		next = (next + 1) % n
		return i
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
