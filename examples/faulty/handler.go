package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

// hog holds what /oom allocates, so the collector cannot free it.
var hog [][]byte

// sink keeps /loop's work observable, so the loop is not optimised away.
//
//lint:ignore U1000 written, never read, on purpose
var sink int

// Handler serves these routes, each failing in a different way:
//
//	/ok     200 "ok"
//	/panic  a Go panic in the handler (the SDK reports it: guest panic)
//	/nil    a nil pointer dereference (a Go runtime panic, reported alike)
//	/trap   a WebAssembly trap (`unreachable`) the SDK cannot recover from;
//	        in a native build it would kill the process, so tests skip it
//	/loop   an infinite loop: only the host's deadline stops it
//	/oom    allocates and touches 16 MiB chunks until memory runs out
//	/exit   os.Exit(3): the module exits in the middle of a request
//	/block  blocks forever on a channel: the Go runtime's deadlock check
//	/spin?ms=N  computes for N milliseconds, then answers 200 "spun"
//	        (a slow call that ends on its own)
//	/sleep  sleeps for 2^63-1 ns, in the host (WASI poll_oneoff): only the
//	        host's deadline stops it
//	/sleep-idle     arms that sleep in the next idle call
//	/sleep-restore  arms it in the restore hook of every instance restored
//	        from a snapshot of this instance's memory
//
// and one that does not fail:
//
//	/gcs    the number of completed GC cycles, so tests can see what the
//	        host had the guest run before its snapshot
//	/idles  the number of idle calls the host has made (thaw.OnIdle)
//	/idle-panic  arms a panic in the next idle call, off any request
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("faulty: deliberate panic") })
	mux.HandleFunc("/nil", func(w http.ResponseWriter, r *http.Request) {
		var p *struct{ n int }
		fmt.Fprintln(w, p.n)
	})
	mux.HandleFunc("/trap", func(http.ResponseWriter, *http.Request) { runtime.Breakpoint() })
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; ; i++ {
			sink += i
		}
	})
	mux.HandleFunc("/oom", func(http.ResponseWriter, *http.Request) {
		for {
			b := make([]byte, 16<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			hog = append(hog, b)
		}
	})
	mux.HandleFunc("/exit", func(http.ResponseWriter, *http.Request) { os.Exit(3) })
	mux.HandleFunc("/spin", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		for t0 := time.Now(); time.Since(t0) < time.Duration(ms)*time.Millisecond; {
			sink++
		}
		fmt.Fprintln(w, "spun")
	})
	mux.HandleFunc("/block", func(http.ResponseWriter, *http.Request) { <-make(chan int) })
	mux.HandleFunc("/sleep", func(http.ResponseWriter, *http.Request) { time.Sleep(math.MaxInt64) })
	mux.HandleFunc("/sleep-idle", func(w http.ResponseWriter, r *http.Request) {
		idleSleep.Store(true)
		fmt.Fprintln(w, "armed")
	})
	mux.HandleFunc("/sleep-restore", func(w http.ResponseWriter, r *http.Request) {
		restoreSleep.Store(true)
		fmt.Fprintln(w, "armed")
	})
	mux.HandleFunc("/gcs", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintln(w, ms.NumGC)
	})
	mux.HandleFunc("/idles", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, idles.Load()) })
	mux.HandleFunc("/idle-panic", func(w http.ResponseWriter, r *http.Request) {
		idlePanic.Store(true)
		fmt.Fprintln(w, "armed")
	})
	return mux
}

// idles counts idle calls; idlePanic makes the next one panic, idleSleep
// sleep "for ever"; restoreSleep makes every restore hook sleep.
var (
	idles        atomic.Int64
	idlePanic    atomic.Bool
	idleSleep    atomic.Bool
	restoreSleep atomic.Bool
)

// onIdle is registered with thaw.OnIdle in main.go.
func onIdle() {
	idles.Add(1)
	if idlePanic.Swap(false) {
		panic("faulty: deliberate idle panic")
	}
	if idleSleep.Swap(false) {
		time.Sleep(math.MaxInt64)
	}
}

// onRestore is registered with thaw.OnRestore in main.go.
func onRestore() {
	if restoreSleep.Load() {
		time.Sleep(math.MaxInt64)
	}
}
