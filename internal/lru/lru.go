// Package lru is a least-recently-used index bounded in bytes, the policy
// of thaw's caches: decrypted chunks (store), and the mem and disk store
// tiers. Well-kept LRU libraries bound the number of entries; these caches
// hold values from a few bytes to megabytes, so the bound is their size.
//
// A Cache is not safe for concurrent use: its users hold a lock of their
// own, which they need anyway around what an entry stands for (a file on
// disk, an in-flight load).
package lru

import (
	"container/list"
	"iter"
)

// Cache maps keys to values, evicting the least recently used entries when
// the sizes of its values would exceed its capacity. The zero value is not
// usable; call New.
type Cache[K comparable, V any] struct {
	capacity int64
	size     func(V) int64
	onEvict  func(K, V)

	used  int64
	order list.List // front = most recently used; values are *entry[K, V]
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key  K
	val  V
	size int64
}

// New returns an empty Cache holding values whose sizes (as size reports
// them, fixed while a value is cached) sum to at most capacity; capacity
// <= 0 means unbounded. onEvict, if set, runs for each entry evicted to
// make room (not for Remove or a replacing Add), under the caller's lock.
func New[K comparable, V any](capacity int64, size func(V) int64, onEvict func(K, V)) *Cache[K, V] {
	return &Cache[K, V]{capacity: capacity, size: size, onEvict: onEvict, items: map[K]*list.Element{}}
}

// Get returns key's value and makes it the most recently used.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	el, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry[K, V]).val, true
}

// Peek returns key's value without counting a use.
func (c *Cache[K, V]) Peek(key K) (V, bool) {
	el, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	return el.Value.(*entry[K, V]).val, true
}

// Add stores val under key as the most recently used entry, replacing any
// entry of key, and evicts least recently used entries until the sizes fit
// the capacity. A value larger than the whole capacity is not stored and
// evicts nothing: Add reports false and changes nothing.
func (c *Cache[K, V]) Add(key K, val V) bool {
	size := c.size(val)
	if c.capacity > 0 && size > c.capacity {
		return false
	}
	c.Remove(key)
	c.EvictFor(size)
	c.items[key] = c.order.PushFront(&entry[K, V]{key: key, val: val, size: size})
	c.used += size
	return true
}

// Remove drops key's entry, without calling onEvict, and returns its value.
func (c *Cache[K, V]) Remove(key K) (V, bool) {
	el, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	e := c.order.Remove(el).(*entry[K, V])
	delete(c.items, key)
	c.used -= e.size
	return e.val, true
}

// EvictFor evicts least recently used entries until need more bytes fit
// within the capacity, or the cache is empty.
func (c *Cache[K, V]) EvictFor(need int64) {
	for c.capacity > 0 && c.used+need > c.capacity && c.order.Len() > 0 {
		e := c.order.Back().Value.(*entry[K, V])
		c.Remove(e.key)
		if c.onEvict != nil {
			c.onEvict(e.key, e.val)
		}
	}
}

// Len returns the number of entries.
func (c *Cache[K, V]) Len() int { return len(c.items) }

// Used returns the sum of the cached values' sizes.
func (c *Cache[K, V]) Used() int64 { return c.used }

// All yields the entries from the most to the least recently used, without
// counting uses. The cache must not be changed during the iteration.
func (c *Cache[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for el := c.order.Front(); el != nil; el = el.Next() {
			e := el.Value.(*entry[K, V])
			if !yield(e.key, e.val) {
				return
			}
		}
	}
}
