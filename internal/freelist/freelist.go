// Package freelist keeps a bounded number of idle values that are costly
// to make and must be released explicitly (a restore's staging buffers,
// which are mappings; asynchronous I/O contexts, which are kernel objects),
// so that the next user takes one instead of making it, and releases the
// rest: beyond a count, and after a time unused.
package freelist

import (
	"sync"
	"time"
)

// A List hands out idle values (Get) and takes them back (Put). Set its
// fields before the first use; it is safe for concurrent use after that.
type List[T any] struct {
	// New makes a value when none is idle.
	New func() (T, error)
	// Release frees a value the list does not keep.
	Release func(T)
	// Max is how many idle values the list keeps.
	Max int
	// Idle, if positive, is how long the idle values are kept unused
	// before they are all released.
	Idle time.Duration

	mu   sync.Mutex
	free []T
	trim *time.Timer
}

// Get returns an idle value, the one put back last, or a new one.
func (l *List[T]) Get() (T, error) {
	l.mu.Lock()
	if n := len(l.free); n > 0 {
		v := l.free[n-1]
		l.free = l.free[:n-1]
		l.mu.Unlock()
		return v, nil
	}
	l.mu.Unlock()
	return l.New()
}

// Put gives v back: it is kept for the next Get, or released if the list
// already keeps Max values.
func (l *List[T]) Put(v T) {
	l.mu.Lock()
	if len(l.free) >= l.Max {
		l.mu.Unlock()
		l.Release(v)
		return
	}
	l.free = append(l.free, v)
	if l.Idle > 0 {
		if l.trim == nil {
			l.trim = time.AfterFunc(l.Idle, l.ReleaseAll)
		} else {
			l.trim.Reset(l.Idle)
		}
	}
	l.mu.Unlock()
}

// ReleaseAll releases every idle value.
func (l *List[T]) ReleaseAll() {
	l.mu.Lock()
	free := l.free
	l.free = nil
	l.mu.Unlock()
	for _, v := range free {
		l.Release(v)
	}
}

// Len is the number of idle values.
func (l *List[T]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.free)
}
