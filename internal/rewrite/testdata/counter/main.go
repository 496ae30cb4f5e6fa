// Command counter is a wasip1 reactor whose state lives in globals, the heap
// and goroutine stacks, so a snapshot that misses any of them diverges.
package main

import "strconv"

var (
	// counts grows a map on the heap on every call.
	counts = map[string]int{}
	// total is a plain global in linear memory.
	total uint64
	// seed is set at init and feeds a pseudo-random sequence.
	seed uint64 = 0x9e3779b97f4a7c15
	// table is initialised from a data segment: non-zero bytes at start.
	table = [8]uint64{1, 2, 3, 5, 8, 13, 21, 34}
)

func init() {
	for i := range 1000 {
		counts["init"+strconv.Itoa(i)] = i
	}
}

// step mutates every kind of state and returns a value that depends on all of it.
//
//go:wasmexport step
func step(n int32) int64 {
	key := "k" + strconv.Itoa(int(n)%37)
	counts[key]++
	total += uint64(n)
	seed ^= seed << 13
	seed ^= seed >> 7
	seed ^= seed << 17
	table[n&7] += seed & 0xff
	buf := make([]byte, 0, 64+int(n%512)) // allocation pressure, GC eventually
	buf = strconv.AppendUint(buf, seed, 16)
	return int64(counts[key])*1_000_003 + int64(total) + int64(len(counts)) + int64(table[n&7]) + int64(len(buf))
}

// sum returns a digest of the whole map, so lost heap state shows.
//
//go:wasmexport sum
func sum() int64 {
	var s int64
	for k, v := range counts {
		s += int64(len(k)) * int64(v+1)
	}
	return s ^ int64(seed)
}

func main() {}
