package lru

import (
	"slices"
	"testing"
)

func bytesLen(b []byte) int64 { return int64(len(b)) }

func keys[K comparable, V any](c *Cache[K, V]) []K {
	var ks []K
	for k := range c.All() {
		ks = append(ks, k)
	}
	return ks
}

func TestEvictsLeastRecentlyUsedByBytes(t *testing.T) {
	var evicted []string
	c := New(10, bytesLen, func(k string, _ []byte) { evicted = append(evicted, k) })
	c.Add("a", make([]byte, 4))
	c.Add("b", make([]byte, 4))
	if _, ok := c.Get("a"); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.Add("c", make([]byte, 4)) // 12 > 10: b goes
	if got := keys(c); !slices.Equal(got, []string{"c", "a"}) || c.Used() != 8 {
		t.Fatalf("keys %v used %d, want [c a] 8", got, c.Used())
	}
	if !slices.Equal(evicted, []string{"b"}) {
		t.Fatalf("evicted %v, want [b]", evicted)
	}
	c.Add("d", make([]byte, 10)) // needs everything
	if got := keys(c); !slices.Equal(got, []string{"d"}) || c.Used() != 10 || c.Len() != 1 {
		t.Fatalf("keys %v used %d", got, c.Used())
	}
}

func TestPeekDoesNotCountAUse(t *testing.T) {
	c := New[string](8, bytesLen, nil)
	c.Add("a", make([]byte, 4))
	c.Add("b", make([]byte, 4))
	if _, ok := c.Peek("a"); !ok {
		t.Fatal("a missing")
	}
	c.Add("c", make([]byte, 4))
	if _, ok := c.Peek("a"); ok {
		t.Fatal("Peek kept a")
	}
}

func TestReplaceRemoveAndTooLarge(t *testing.T) {
	evictions := 0
	c := New(10, bytesLen, func(string, []byte) { evictions++ })
	c.Add("a", make([]byte, 6))
	c.Add("a", make([]byte, 8)) // replaces: not an eviction, no double count
	if c.Used() != 8 || c.Len() != 1 || evictions != 0 {
		t.Fatalf("used %d len %d evictions %d", c.Used(), c.Len(), evictions)
	}
	if c.Add("big", make([]byte, 11)) {
		t.Fatal("a value over the capacity was stored")
	}
	if _, ok := c.Peek("a"); !ok || evictions != 0 {
		t.Fatal("a refused value evicted others")
	}
	if v, ok := c.Remove("a"); !ok || len(v) != 8 || c.Used() != 0 || evictions != 0 {
		t.Fatalf("Remove: %d %v used %d evictions %d", len(v), ok, c.Used(), evictions)
	}
	if _, ok := c.Remove("a"); ok {
		t.Fatal("removed twice")
	}
}

func TestUnboundedAndEvictFor(t *testing.T) {
	c := New[string](0, bytesLen, nil)
	for _, k := range []string{"a", "b", "c"} {
		if !c.Add(k, make([]byte, 1<<20)) {
			t.Fatal("unbounded cache refused")
		}
	}
	c.EvictFor(1 << 30)
	if c.Len() != 3 {
		t.Fatal("EvictFor evicted from an unbounded cache")
	}
	b := New[string](10, bytesLen, nil)
	b.Add("a", make([]byte, 3))
	b.Add("b", make([]byte, 3))
	b.Add("c", make([]byte, 3))
	b.EvictFor(5) // 9+5 > 10: a and b go, 3+5 fits
	if got := keys(b); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("keys %v, want [c]", got)
	}
	b.EvictFor(100)
	if b.Len() != 0 || b.Used() != 0 {
		t.Fatal("EvictFor past the capacity did not empty the cache")
	}
}
