package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// numModules is how many JavaScript modules the program has.
const numModules = 16

// rounds is how many mixing rounds a module's function runs per call: the
// cost of the slow (not yet memoized) path.
const rounds = 16

// driver is the program's core, compiled on the first request. Modules
// register a pure function and a hotness threshold; call memoizes a
// function's result for an input once it has been computed threshold times,
// as a JIT optimises a function once it is hot. Until then every call
// recomputes. The memo changes cost, never results.
const driver = `
function register(name, f, threshold) {
  mods.push({name: name, f: f, threshold: threshold, memo: new Map(), calls: new Map()});
}
var mods = [];
function call(m, x) {
  var v = m.memo.get(x);
  if (v !== undefined) return v;
  v = m.f(x);
  var c = (m.calls.get(x) || 0) + 1;
  if (c >= m.threshold) { m.memo.set(x, v); m.calls.delete(x); } else { m.calls.set(x, c); }
  return v;
}
function handle(inputs) {
  var sum = 0;
  for (var i = 0; i < mods.length; i++) {
    for (var j = 0; j < inputs.length; j++) {
      sum = (sum + call(mods[i], inputs[j])) % 1000000007;
    }
  }
  return sum;
}
function stats() {
  var memoized = 0, pending = 0;
  for (var i = 0; i < mods.length; i++) { memoized += mods[i].memo.size; pending += mods[i].calls.size; }
  return {memoized: memoized, pending: pending, modules: mods.length};
}
`

// module is one generated module's parameters.
type module struct {
	c, m      uint32
	threshold int
}

// modules returns the parameters of every module, from a fixed seed.
// Module i becomes hot after 2+12i calls per input: tier-ups are spread
// over the first ~180 requests.
func modules() []module {
	rng := rand.New(rand.NewPCG(1, 2))
	ms := make([]module, numModules)
	for i := range ms {
		ms[i] = module{c: rng.Uint32(), m: rng.Uint32() | 1, threshold: 2 + 12*i}
	}
	return ms
}

// source returns module i's JavaScript: its function, a table it builds
// when loaded, and helper functions that give the compiler a library's
// worth of code to chew through.
func (md module) source(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `(function () {
  var C = %d, M = %d, R = %d;
  var table = [];
  for (var t = 0; t < 256; t++) table.push((Math.imul(t, M) ^ C) >>> 0);
  function f(x) {
    var h = (x ^ C) >>> 0;
    for (var r = 0; r < R; r++) h = (Math.imul(h ^ (h >>> 15), M) + table[r & 255]) >>> 0;
    return h %% 1000003;
  }
`, md.c, md.m, rounds)
	for h := range 12 {
		fmt.Fprintf(&b, "  function helper%d(a, o) {\n    switch (a %% 10) {\n", h)
		for c := range 10 {
			fmt.Fprintf(&b, "    case %d: return {k: 'm%d-h%d-c%d', v: a * %d + (o && o.v || 0), w: [a, %d, 'x%d']};\n", c, i, h, c, c+h, c, h)
		}
		b.WriteString("    }\n    return null;\n  }\n")
	}
	fmt.Fprintf(&b, "  register('mod%d', f, %d);\n})();\n", i, md.threshold)
	return b.String()
}

// eval computes in Go what module md's JavaScript function computes, so
// tests can check the interpreter and the memo against it.
func (md module) eval(x uint32) uint32 {
	var table [256]uint32
	for t := range table {
		table[t] = uint32(t)*md.m ^ md.c
	}
	h := x ^ md.c
	for r := range rounds {
		h = (h^(h>>15))*md.m + table[r&255]
	}
	return h % 1000003
}

// inputs returns the n inputs, in [0, 4096), a request with seed uses.
func inputs(n, seed int) []uint32 {
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	in := make([]uint32, n)
	for i := range in {
		in[i] = uint32(rng.IntN(4096))
	}
	return in
}
