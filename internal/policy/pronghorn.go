package policy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// MaxTracked bounds the request numbers whose latency a policy learns, so
// its state stays small (a few KiB of JSON). Later requests score as the
// last tracked one, as in Pronghorn's artifact.
const MaxTracked = 1024

// unexploredScore is the score of an unexplored request while nothing has
// been observed: that of a zero-latency request.
const unexploredScore = 1e6

// Params are the parameters of the Pronghorn policy.
type Params struct {
	// Window is the number of requests an instance serves before eviction;
	// a snapshot is scored by the mean score of the Window requests that an
	// instance restored from it would serve.
	Window int
	// Pool is the number of snapshots the policy wants to keep.
	Pool int
	// Temp is the softmax temperature of Choose. Scores are normalised by
	// the best candidate's and taken as logarithms, so at Temp 1 a
	// candidate is chosen with probability proportional to its score (the
	// inverse of its latency); lower is greedier, higher more uniform.
	Temp float64
	// Bonus is the optimism about a request number never observed: it
	// scores as its nearest observed predecessors times 1+Bonus, so a
	// lineage keeps walking a curve while each step pays, and stops where
	// the next step is measured to be slower.
	Bonus float64
	// Smooth is the half-width, in request numbers, of the neighbourhood
	// whose mean latency an observed request is scored by when that mean
	// is slower than its own (0: no smoothing). A single lucky
	// observation then cannot outscore a real trend.
	Smooth int
	// Eps is the weight of a new latency in the moving average.
	Eps float64
	// Top is the fraction of an over-full pool kept by score.
	Top float64
	// Rest is the fraction of the remaining snapshots kept at random, so
	// that the pool does not collapse onto one lineage.
	Rest float64
}

// DefaultParams returns the parameters of Pronghorn's paper and artifact
// (window, pool, eps, top, rest), and thaw's temperature and bonus: the
// artifact's softmax over raw scores is in effect an argmax, which a low
// temperature approximates while still sampling among near-ties
// (docs/policy.md).
func DefaultParams() Params {
	return Params{Window: 20, Pool: 12, Temp: 0.05, Eps: 0.5, Top: 0.4, Rest: 0.1, Bonus: 1, Smooth: 8}
}

// PoolSizer is implemented by policies that want a pool of their own size;
// the worker bounds the pool by the smaller of that and its own limit.
type PoolSizer interface {
	// PoolSize is the number of snapshots the policy wants to keep.
	PoolSize() int
}

// pronghorn is the request-centric policy of Pronghorn (EuroSys'24). It
// learns a moving average of latency per request number, snapshots each
// instance at a request number sampled by the score of what would follow,
// and restores a snapshot sampled from a softmax of scores, cold boots
// included.
type pronghorn struct {
	prm Params
	// ema[r-1] is the moving average of request r's latency in ms; 0 means
	// never observed.
	ema []float64
	src *rand.PCG
	rng *rand.Rand
	// best caches optimistic(); 0 when stale.
	best float64
}

var (
	_ Policy    = (*pronghorn)(nil)
	_ PoolSizer = (*pronghorn)(nil)
)

func newPronghorn(prm Params, seed uint64) *pronghorn {
	// Two words of PCG state from one seed; the constant only decorrelates
	// them.
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	return &pronghorn{prm: prm, src: src, rng: rand.New(src)}
}

// Name is "pronghorn" followed by the parameters that differ from the
// defaults, in a fixed order, so equal policies have equal names.
func (p *pronghorn) Name() string {
	d := DefaultParams()
	var kv []string
	add := func(k string, v, def float64) {
		if v != def {
			kv = append(kv, k+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	add("window", float64(p.prm.Window), float64(d.Window))
	add("pool", float64(p.prm.Pool), float64(d.Pool))
	add("temp", p.prm.Temp, d.Temp)
	add("eps", p.prm.Eps, d.Eps)
	add("top", p.prm.Top, d.Top)
	add("rest", p.prm.Rest, d.Rest)
	add("bonus", p.prm.Bonus, d.Bonus)
	add("smooth", float64(p.prm.Smooth), float64(d.Smooth))
	if len(kv) == 0 {
		return "pronghorn"
	}
	return "pronghorn:" + strings.Join(kv, ",")
}

// PoolSize is the pool parameter.
func (p *pronghorn) PoolSize() int { return p.prm.Pool }

// Observe folds a latency into request req's moving average. Latencies are
// kept in ms rounded to the µs, which is all the scores can tell apart and
// keeps the marshalled state short.
func (p *pronghorn) Observe(req int, latency time.Duration) {
	if req < 1 || req > MaxTracked || latency < 0 {
		return
	}
	ms := float64(latency) / float64(time.Millisecond)
	if req > len(p.ema) {
		p.ema = append(p.ema, make([]float64, req-len(p.ema))...)
	}
	if old := p.ema[req-1]; old > 0 {
		ms = p.prm.Eps*ms + (1-p.prm.Eps)*old
	}
	// A floor keeps an observed request distinct from an unexplored one.
	p.ema[req-1] = max(math.Round(ms*1e3)/1e3, 1e-3)
	p.best = 0
}

// score is Pronghorn's score of request req: 1e6 / (latency in ms + 1),
// where the latency is the request's moving average, or the mean of its
// observed neighbours within Smooth request numbers when that is slower.
// Measured latencies are noisy and each request number has few
// observations, so the best-looking of a dozen snapshots is mostly the
// luckiest (the winner's curse); the pessimistic mean removes lucky lows
// and keeps real spikes such as a first request that compiles.
//
// A request never observed scores as the mean of its nearest observed
// predecessors (up to Smooth+1 of them) times 1+Bonus (optimism in the
// face of uncertainty), or as the best observed score when no predecessor
// was observed. Pronghorn's artifact starts its table at zero latency, the
// best possible score (1e6), so an unexplored request always wins; in
// simulation that sends lineages ever further when latency grows with the
// request number (a leak). Scoring it from its predecessors walks a
// warm-up curve to its end, one step per instance, and stops a leak once
// a step is measured worse than the bonus (docs/policy.md). Cost: a scan
// over at most 2·Smooth+1 numbers, plus one back to the last observed.
func (p *pronghorn) score(req int) float64 {
	req = min(max(req, 1), MaxTracked)
	if req <= len(p.ema) && p.ema[req-1] > 0 {
		mean := p.meanObserved(max(req-p.prm.Smooth, 1), req, p.prm.Smooth+1)
		return 1e6 / (max(p.ema[req-1], mean) + 1)
	}
	for r := min(req-1, len(p.ema)); r >= 1; r-- {
		if p.ema[r-1] > 0 {
			mean := p.meanObserved(1, r, p.prm.Smooth+1)
			return 1e6 / (mean + 1) * (1 + p.prm.Bonus)
		}
	}
	return p.optimistic()
}

// meanObserved is the mean latency of the last (highest) n observed
// request numbers in [lo, hi]; hi must be observed.
func (p *pronghorn) meanObserved(lo, hi, n int) float64 {
	var sum float64
	k := 0
	for r := hi; r >= lo && k < n; r-- {
		if v := p.ema[r-1]; v > 0 {
			sum += v
			k++
		}
	}
	return sum / float64(k)
}

// optimistic is the score of a request number with no observed
// predecessor: the best score observed so far (1e6 before any). Cost: one
// pass over at most MaxTracked numbers.
func (p *pronghorn) optimistic() float64 {
	if p.best > 0 {
		return p.best
	}
	best := 0.0
	for _, v := range p.ema {
		if v > 0 {
			best = max(best, 1e6/(v+1))
		}
	}
	if best == 0 {
		best = unexploredScore
	}
	p.best = best
	return best
}

// windowScore scores a snapshot taken after request k (0: initialisation
// or a cold boot) by the mean score of the Window requests an instance
// restored from it serves before eviction.
func (p *pronghorn) windowScore(k int) float64 {
	var sum float64
	for r := k + 1; r <= k+p.prm.Window; r++ {
		sum += p.score(r)
	}
	return sum / float64(p.prm.Window)
}

// Choose samples the pool plus a cold boot from a softmax of window
// scores. Raw scores (up to 1e6) would make the softmax an argmax, so each
// is divided by the best and its logarithm divided by Temp: the weights
// are then (score/best)^(1/Temp).
func (p *pronghorn) Choose(pool []Candidate) int {
	scores := make([]float64, len(pool)+1)
	for i, c := range pool {
		scores[i] = p.windowScore(max(c.Request, 0))
	}
	scores[len(pool)] = p.windowScore(0) // cold: a fresh boot serves request 1 next
	best := slices.Max(scores)
	weights := make([]float64, len(scores))
	for i, s := range scores {
		weights[i] = math.Exp(math.Log(s/best) / p.prm.Temp)
	}
	i := p.sample(weights)
	if i == len(pool) {
		return Cold
	}
	return i
}

// CheckpointAt samples the request after which to snapshot from the
// requests the instance will serve, [start, start+Window), each weighted
// by the window score a snapshot there would have.
func (p *pronghorn) CheckpointAt(start int) int {
	start = max(start, 1)
	weights := make([]float64, p.prm.Window)
	for i := range weights {
		weights[i] = p.windowScore(start + i)
	}
	return start + p.sample(weights)
}

// Prune keeps the best Top of the pool by window score plus Rest of the
// others at random, at most min(capacity, Pool) in all. The random share
// keeps lineages alive whose scores are stale or still unexplored.
func (p *pronghorn) Prune(pool []Candidate, capacity int) []int {
	limit := min(capacity, p.prm.Pool)
	if len(pool) <= limit {
		return allIndices(len(pool))
	}
	if limit < 1 {
		return nil
	}
	scores := make([]float64, len(pool))
	for i, c := range pool {
		scores[i] = p.windowScore(max(c.Request, 0))
	}
	order := allIndices(len(pool))
	// Best first; on ties the later request, then the newer snapshot.
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(pool[b].Request, pool[a].Request); c != 0 {
			return c
		}
		return b - a
	})
	nTop := min(max(int(math.Round(p.prm.Top*float64(len(pool)))), 1), limit)
	keep := slices.Clone(order[:nTop])
	rest := order[nTop:]
	nRest := min(int(math.Round(p.prm.Rest*float64(len(rest)))), limit-nTop)
	p.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	keep = append(keep, rest[:nRest]...)
	slices.Sort(keep)
	return keep
}

// sample returns an index drawn with probability proportional to weights
// (all >= 0, at least one > 0).
func (p *pronghorn) sample(weights []float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	u := p.rng.Float64() * sum
	for i, w := range weights {
		if u < w {
			return i
		}
		u -= w
	}
	// Rounding can leave u just past the last weight.
	for i := len(weights) - 1; i > 0; i-- {
		if weights[i] > 0 {
			return i
		}
	}
	return 0
}

// pronghornState is the marshalled state: the latency table and the
// random generator, so that a restarted worker continues the same
// sequence of choices.
type pronghornState struct {
	V   int       `json:"v"`
	EMA []float64 `json:"ema_ms"`
	RNG []byte    `json:"rng"`
}

const stateVersion = 1

// maxStateLatencyMS bounds a latency in a marshalled state: the longest
// time.Duration, in milliseconds.
const maxStateLatencyMS = float64(math.MaxInt64) / float64(time.Millisecond)

// MarshalState encodes the learned latencies (at most MaxTracked numbers)
// and the generator's state as JSON.
func (p *pronghorn) MarshalState() ([]byte, error) {
	rng, err := p.src.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("policy state: %w", err)
	}
	ema := p.ema
	if ema == nil {
		ema = []float64{}
	}
	return json.Marshal(pronghornState{V: stateVersion, EMA: ema, RNG: rng})
}

// UnmarshalState replaces the state with one MarshalState produced. A
// state that does not decode or is out of bounds is ErrCorrupt and leaves
// the policy unchanged.
func (p *pronghorn) UnmarshalState(b []byte) error {
	var st pronghornState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("pronghorn state: %w: %v", errdefs.ErrCorrupt, err)
	}
	if st.V != stateVersion {
		return fmt.Errorf("pronghorn state: version %d, want %d: %w", st.V, stateVersion, errdefs.ErrCorrupt)
	}
	if len(st.EMA) > MaxTracked {
		return fmt.Errorf("pronghorn state: %d request numbers, at most %d: %w", len(st.EMA), MaxTracked, errdefs.ErrCorrupt)
	}
	for i, v := range st.EMA {
		// No observed latency exceeds a time.Duration (2^63 ns, some 9.2e12
		// ms); a larger one would overflow Observe's rounding to +Inf, which
		// JSON cannot encode, and the state could never be saved again.
		if !(v >= 0 && v <= maxStateLatencyMS) {
			return fmt.Errorf("pronghorn state: latency %v of request %d: %w", v, i+1, errdefs.ErrCorrupt)
		}
	}
	src := &rand.PCG{}
	if err := src.UnmarshalBinary(st.RNG); err != nil {
		return fmt.Errorf("pronghorn state: rng: %w: %v", errdefs.ErrCorrupt, err)
	}
	p.ema, p.best = st.EMA, 0
	p.src, p.rng = src, rand.New(src)
	return nil
}
