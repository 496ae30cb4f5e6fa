package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/thaw-run/thaw/internal/api"
)

// StoreReadMetric is the worker's counter of bytes its snapshot store
// read, labelled by the tier that served them; the "remote" tier is the
// object store.
const StoreReadMetric = "thaw_store_read_bytes_total"

// Endpoint is what one entry point of a run said about itself.
type Endpoint struct {
	// URL is the entry point.
	URL string `json:"url"`
	// Node is the id of the worker answering there (GET /v1/cluster's
	// self); empty when it did not say.
	Node string `json:"node,omitempty"`
	// StoreBytes is what its snapshot store read during the run, by tier
	// (StoreReadMetric after the run minus before); nil when /metrics did
	// not answer both times.
	StoreBytes map[string]float64 `json:"store_bytes,omitempty"`
}

// observe asks each entry point for its node id and store counters,
// bounded by a few seconds each; what fails stays empty.
func observe(ctx context.Context, client *http.Client, entries []string, hdr http.Header) []Endpoint {
	out := make([]Endpoint, len(entries))
	for i, base := range entries {
		base = strings.TrimSuffix(base, "/")
		out[i].URL = base
		var cl api.Cluster
		if err := getJSON(ctx, client, base+"/v1/cluster", hdr, &cl); err == nil {
			out[i].Node = cl.Self
		}
		if m, err := scrapeByLabel(ctx, client, base+"/metrics", hdr, StoreReadMetric, "tier"); err == nil {
			out[i].StoreBytes = m
		}
	}
	return out
}

// delta is after with each store counter less its value before.
func delta(before, after []Endpoint) []Endpoint {
	for i := range after {
		if i >= len(before) || before[i].StoreBytes == nil || after[i].StoreBytes == nil {
			after[i].StoreBytes = nil
			continue
		}
		for tier, v := range after[i].StoreBytes {
			after[i].StoreBytes[tier] = v - before[i].StoreBytes[tier]
		}
		if after[i].Node == "" {
			after[i].Node = before[i].Node
		}
	}
	return after
}

// get fetches url with hdr within 5 s and returns the open response of a
// 200.
func get(ctx context.Context, client *http.Client, url string, hdr http.Header) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("get %s: %w", url, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	return resp, cancel, nil
}

func getJSON(ctx context.Context, client *http.Client, url string, hdr http.Header, v any) error {
	resp, cancel, err := get(ctx, client, url, hdr)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// scrapeByLabel returns the series of the counter or gauge name in url's
// Prometheus exposition, keyed by the value of label.
func scrapeByLabel(ctx context.Context, client *http.Client, url string, hdr http.Header, name, label string) (map[string]float64, error) {
	resp, cancel, err := get(ctx, client, url, hdr)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		key := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				key = lp.GetValue()
			}
		}
		switch {
		case m.Counter != nil:
			out[key] += m.GetCounter().GetValue()
		case m.Gauge != nil:
			out[key] += m.GetGauge().GetValue()
		}
	}
	return out, nil
}
