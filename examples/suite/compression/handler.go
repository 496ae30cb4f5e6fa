package main

import (
	"bytes"
	"compress/gzip"
	"hash/crc32"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// corpus is the default input: 1 MiB of generated text with the
// redundancy of real logs, so gzip reaches a realistic ratio (about 4:1).
var corpus = makeCorpus(1 << 20)

// result is compression's JSON answer.
type result struct {
	BytesIn  int     `json:"bytes_in"`
	BytesOut int     `json:"bytes_out"`
	Ratio    float64 `json:"ratio"`
	Level    int     `json:"level"`
	CRC32    uint32  `json:"crc32"`
	SHA256   string  `json:"sha256"`
}

// Handler gzips a buffer at ?level= (1-9, default 6). GET compresses the
// first ?size= bytes (default all 1 MiB) of the generated corpus; POST
// compresses the body.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		level, err := fn.Int(r, "level", 6, 1, 9)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		var in []byte
		if r.Method == http.MethodPost {
			if in, err = fn.Body(r); err != nil {
				fn.Error(w, http.StatusRequestEntityTooLarge, "%v", err)
				return
			}
		} else {
			size, err := fn.Int(r, "size", len(corpus), 0, len(corpus))
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "%v", err)
				return
			}
			in = corpus[:size]
		}
		out, err := compress(in, level)
		if err != nil {
			fn.Error(w, http.StatusInternalServerError, "gzip: %v", err)
			return
		}
		ratio := 0.0
		if len(out) > 0 {
			ratio = float64(int(1000*float64(len(in))/float64(len(out)))) / 1000
		}
		fn.JSON(w, result{BytesIn: len(in), BytesOut: len(out), Ratio: ratio, Level: level,
			CRC32: crc32.ChecksumIEEE(in), SHA256: fn.Digest(out)})
	})
}

// compress gzips in. The header carries no name or time, so the output is
// a pure function of in and level.
func compress(in []byte, level int) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(in); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// makeCorpus returns n bytes of pseudo log lines from a seeded generator.
func makeCorpus(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 5))
	levels := []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	paths := []string{"/api/v1/users", "/api/v1/orders", "/static/app.js", "/healthz", "/api/v1/cart", "/login"}
	buf := make([]byte, 0, n+256)
	for len(buf) < n {
		buf = append(buf, "2026-11-22T10:"...)
		buf = strconv.AppendInt(buf, int64(10+rng.IntN(50)), 10)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, int64(10+rng.IntN(50)), 10)
		buf = append(buf, "Z "...)
		buf = append(buf, levels[rng.IntN(len(levels))]...)
		buf = append(buf, " request path="...)
		buf = append(buf, paths[rng.IntN(len(paths))]...)
		buf = append(buf, " status="...)
		buf = strconv.AppendInt(buf, int64([]int{200, 200, 200, 304, 404, 500}[rng.IntN(6)]), 10)
		buf = append(buf, " bytes="...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(100000)), 10)
		buf = append(buf, " id="...)
		buf = strconv.AppendUint(buf, rng.Uint64(), 16)
		buf = append(buf, '\n')
	}
	return buf[:n]
}
