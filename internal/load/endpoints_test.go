package load

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// worker is a fake cluster worker: it names itself in X-Thaw-Node and
// /v1/cluster, serves its first invocation cold and the rest warm, and its
// store's remote tier reads 1000 bytes per cold start.
type fakeWorker struct {
	node  string
	calls atomic.Int64
}

func (f *fakeWorker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/fn/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fn/f/p" || r.URL.Query().Get("name") != "x" {
			http.Error(w, "path and query not passed on: "+r.URL.String(), http.StatusBadRequest)
			return
		}
		desc := "warm"
		if f.calls.Add(1) == 1 {
			desc = "cold"
		}
		w.Header().Set("Server-Timing", fmt.Sprintf(`start;dur=1;desc=%q, exec;dur=1`, desc))
		w.Header().Set("X-Thaw-Node", f.node)
	})
	mux.HandleFunc("/v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"self": %q, "workers": []}`, f.node)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		cold := min(f.calls.Load(), 1)
		fmt.Fprintf(w, "# TYPE thaw_store_read_bytes_total counter\nthaw_store_read_bytes_total{tier=\"disk\"} 7\nthaw_store_read_bytes_total{tier=\"remote\"} %d\n", 500+1000*cold)
	})
	return mux
}

// TestRunSpreadsOverEntries: three entry points, one of which refuses
// connections: round-robin sends every third request to the dead one,
// which moves on to the next; every request is answered by one of the two
// live workers, the summary splits them per worker with each one's
// cold-start rate and object-store bytes read during the run.
func TestRunSpreadsOverEntries(t *testing.T) {
	var urls []string
	for _, node := range []string{"w1", "w2"} {
		srv := httptest.NewServer((&fakeWorker{node: node}).handler())
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens: connections are refused
	urls = append(urls, dead)

	var sched []Arrival
	for i := range 30 {
		sched = append(sched, Arrival{At: time.Duration(i) * time.Millisecond, Function: "f"})
	}
	for _, spread := range []string{SpreadRoundRobin, SpreadRandom} {
		t.Run(spread, func(t *testing.T) {
			res, err := Run(context.Background(), Options{BaseURLs: urls, Spread: spread, Seed: 3, Schedule: sched, Path: "/p?name=x",
				Endpoints: true, Header: http.Header{"Authorization": {"Bearer t"}}})
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			for _, r := range res.Records {
				if !r.OK() || r.Node == "" || r.Entry == 2 {
					t.Fatalf("record %+v: want answered by a live worker", r)
				}
				refused += r.Refused
			}
			if spread == SpreadRoundRobin && refused != 10 {
				t.Fatalf("%d refusals, want 10 (every third request)", refused)
			}
			if spread == SpreadRandom && (refused == 0 || refused == 30) {
				t.Fatalf("%d refusals of 30 at random over 3 entries", refused)
			}
			sum := Summarize(res)
			if len(sum.Workers) != 2 {
				t.Fatalf("workers %+v", sum.Workers)
			}
			total := 0
			for i, w := range sum.Workers {
				if w.Worker != []string{"w1", "w2"}[i] || w.Entry != urls[i] || w.Requests == 0 {
					t.Fatalf("worker %d: %+v", i, w)
				}
				total += w.Requests
			}
			if total != 30 {
				t.Fatalf("workers served %d requests, want 30", total)
			}
			if spread == SpreadRoundRobin {
				// The first run's workers each started cold once, and
				// read 1000 remote bytes for it.
				for _, w := range sum.Workers {
					if w.Cold != 1 || w.StoreBytes["remote"] != 1000 || w.StoreBytes["disk"] != 0 {
						t.Fatalf("worker %s: cold %d, store bytes %v", w.Worker, w.Cold, w.StoreBytes)
					}
				}
				if sum.StoreRemoteBytes != 2000 {
					t.Fatalf("store remote bytes %v, want 2000", sum.StoreRemoteBytes)
				}
			}
			if len(res.Endpoints) != 3 || res.Endpoints[2].Node != "" || res.Endpoints[2].StoreBytes != nil {
				t.Fatalf("endpoints %+v", res.Endpoints)
			}
		})
	}
}

func TestRunRejectsUnknownSpread(t *testing.T) {
	if _, err := Run(context.Background(), Options{BaseURL: "http://127.0.0.1:1", Spread: "nearest"}); err == nil {
		t.Fatal("spread nearest accepted")
	}
}
