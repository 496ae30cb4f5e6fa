// Command probe is a thaw function that reports what an engine must keep
// right across a restore, for the engine conformance suite
// (internal/engine/enginetest). It lives under testdata so that
// `go build ./...` skips it.
//
//	/rand   16 bytes of crypto/rand, hex: a clone must not repeat its
//	        snapshot's randomness
//	/mono   nanoseconds since initialisation on the monotonic clock: it must
//	        never go backwards across a restore
//	/count  increments a counter in linear memory and returns it
//	/peek?addr=N  reads the byte at linear-memory address N, unchecked:
//	        past the memory's length it must trap
//	/primed how many times the request registered with thaw.Prime
//	        (/primed?prime=1) was served: 2 in an instance restored from a
//	        deploy snapshot (before and after its collection), 0 in a
//	        booted one
//	/stdin  "ok" if descriptor 0 is open (fd_filestat_get), else the error
//	/close-stdin closes descriptor 0: an instance kept for reuse must not
//	        hand the closed descriptor to its next owner
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

var (
	start  time.Time
	count  int
	primed int
)

func init() {
	start = time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/rand", func(w http.ResponseWriter, r *http.Request) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		fmt.Fprint(w, hex.EncodeToString(b[:]))
	})
	mux.HandleFunc("/mono", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, int64(time.Since(start)))
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		count++
		fmt.Fprint(w, count)
	})
	mux.HandleFunc("/peek", func(w http.ResponseWriter, r *http.Request) {
		addr, err := strconv.ParseUint(r.URL.Query().Get("addr"), 10, 32)
		if err != nil || addr == 0 {
			http.Error(w, "addr: want a non-zero 32-bit address", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, *(*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(addr))))
	})
	mux.HandleFunc("/primed", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("prime") == "1" {
			primed++
		}
		fmt.Fprint(w, primed)
	})
	mux.HandleFunc("/stdin", func(w http.ResponseWriter, r *http.Request) {
		var st syscall.Stat_t
		if err := syscall.Fstat(0, &st); err != nil {
			fmt.Fprint(w, err)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/close-stdin", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, syscall.Close(0))
	})
	thaw.Handle(mux)
	r, _ := http.NewRequest("GET", "/primed?prime=1", nil)
	thaw.Prime(r)
}

func main() {}
