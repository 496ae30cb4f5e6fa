package freelist

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// counter makes and releases numbered values and counts both.
type counter struct {
	mu       sync.Mutex
	made     int
	released []int
}

func (c *counter) list(max int, idle time.Duration) *List[int] {
	return &List[int]{
		New: func() (int, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.made++
			return c.made, nil
		},
		Release: func(v int) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.released = append(c.released, v)
		},
		Max:  max,
		Idle: idle,
	}
}

// TestList: Get makes a value only when none is idle and hands out the one
// put back last; Put keeps at most Max and releases the rest; ReleaseAll
// releases every idle value.
func TestList(t *testing.T) {
	var c counter
	l := c.list(2, 0)
	var got []int
	for range 3 {
		v, err := l.Get()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if c.made != 3 {
		t.Fatalf("made %d values for 3 Gets from an empty list", c.made)
	}
	for _, v := range got {
		l.Put(v)
	}
	if l.Len() != 2 || len(c.released) != 1 || c.released[0] != 3 {
		t.Fatalf("kept %d, released %v; want 2 kept and value 3 released", l.Len(), c.released)
	}
	if v, _ := l.Get(); v != 2 || c.made != 3 {
		t.Fatalf("Get = %d (made %d); want 2, the last put back, and nothing new", v, c.made)
	}
	l.ReleaseAll()
	if l.Len() != 0 || len(c.released) != 2 {
		t.Fatalf("after ReleaseAll: %d kept, released %v", l.Len(), c.released)
	}
}

// TestListIdle: values unused for Idle are released, and a Put restarts
// the wait.
func TestListIdle(t *testing.T) {
	var c counter
	l := c.list(4, 50*time.Millisecond)
	v, _ := l.Get()
	l.Put(v)
	deadline := time.Now().Add(10 * time.Second)
	for l.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an idle value was never released")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.released) != 1 || c.released[0] != v {
		t.Fatalf("released %v, want [%d]", c.released, v)
	}
}

// TestListConcurrent: Gets and Puts from many goroutines never hand one
// value to two holders at once.
func TestListConcurrent(t *testing.T) {
	var c counter
	l := c.list(3, 0)
	var mu sync.Mutex
	held := map[int]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				v, _ := l.Get()
				mu.Lock()
				if held[v] {
					t.Errorf("value %d handed out twice", v)
				}
				held[v] = true
				mu.Unlock()
				runtime.Gosched() // held a while, for another Get to collide
				mu.Lock()
				delete(held, v)
				mu.Unlock()
				l.Put(v)
			}
		})
	}
	wg.Wait()
	if l.Len() > 3 {
		t.Fatalf("%d idle values kept, at most 3", l.Len())
	}
}
