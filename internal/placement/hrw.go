package placement

// Score is the rendezvous (highest random weight) score of a worker for a
// function: every process computes the same number from the two names
// alone, so all workers agree on a function's homes without talking, and a
// worker joining or leaving moves only the functions whose top scores it
// gains or held (about 1/n of them), not a reshuffle as with hash mod n.
//
// It is FNV-1a over function, a zero byte and worker id, finished with
// splitmix64's mixer: FNV alone leaves names that differ in their last
// bytes with correlated high bits, which skews which worker wins.
func Score(function, worker string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(function); i++ {
		h = (h ^ uint64(function[i])) * prime
	}
	h *= prime // the zero byte between the names
	for i := 0; i < len(worker); i++ {
		h = (h ^ uint64(worker[i])) * prime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Homes returns the ids of function's k home workers: the live,
// non-draining workers of v with the highest Score, best first (ties, which
// need a 64-bit collision, by id). Fewer when fewer are eligible.
func Homes(v View, function string, k int) []string {
	hs := homes(candidates(v, function), k)
	ids := make([]string, len(hs))
	for i, c := range hs {
		ids[i] = c.id
	}
	return ids
}

// homes returns the top k of cs by score, best first (cs is not
// modified): an insertion into a k-long list, as k is small.
func homes(cs []*candidate, k int) []*candidate {
	hs := make([]*candidate, 0, max(min(k, len(cs)), 0))
	for _, c := range cs {
		if len(hs) == cap(hs) && (len(hs) == 0 || !c.higher(hs[len(hs)-1])) {
			continue
		}
		if len(hs) < cap(hs) {
			hs = append(hs, c)
		} else {
			hs[len(hs)-1] = c
		}
		for i := len(hs) - 1; i > 0 && hs[i].higher(hs[i-1]); i-- {
			hs[i], hs[i-1] = hs[i-1], hs[i]
		}
	}
	return hs
}
