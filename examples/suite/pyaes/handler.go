package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"math/rand/v2"
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// key is FunctionBench pyaes's fixed 128-bit key.
var key = []byte("\xa1\xf6%\x8c\x87}_\xcd\x89dHE8\xbf\xc9,")

// maxLength bounds the message so one request cannot exhaust memory.
const maxLength = 4 << 20

// result is pyaes's JSON answer.
type result struct {
	Length     int    `json:"length"`
	Iterations int    `json:"iterations"`
	Ciphertext string `json:"ciphertext_sha256"`
	RoundTrip  bool   `json:"roundtrip"`
}

// Handler encrypts a message with AES-128 in CTR mode and decrypts it back,
// ?iterations= times (default 1). GET generates a ?length=-byte message
// (default 16384) of letters from ?seed=; POST encrypts the body.
func Handler() http.Handler {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // a 16-byte key cannot fail
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		iters, err := fn.Int(r, "iterations", 1, 1, 100)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		var msg []byte
		if r.Method == http.MethodPost {
			if msg, err = fn.Body(r); err != nil {
				fn.Error(w, http.StatusRequestEntityTooLarge, "%v", err)
				return
			}
		} else {
			n, err := fn.Int(r, "length", 16384, 0, maxLength)
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "%v", err)
				return
			}
			seed, err := fn.Int(r, "seed", 1, 0, 1<<31)
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "%v", err)
				return
			}
			msg = message(n, uint64(seed))
		}
		ct := make([]byte, len(msg))
		pt := make([]byte, len(msg))
		ok := true
		for range iters {
			// A fresh counter each time, as pyaes builds a new
			// AESModeOfOperationCTR for every encryption and decryption.
			ctr(block, ct, msg, 1)
			ctr(block, pt, ct, 1)
			ok = ok && bytes.Equal(pt, msg)
		}
		fn.JSON(w, result{Length: len(msg), Iterations: iters, Ciphertext: fn.Digest(ct), RoundTrip: ok})
	})
}

// message returns n pseudo-random ASCII letters, like pyaes's
// random_string, from a seeded generator so responses are reproducible.
func message(n int, seed uint64) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return b
}

// ctr XORs src with the AES keystream of the 128-bit big-endian counter
// starting at iv into dst. The loop is written out in Go, as pyaes writes
// it in pure Python: only the block cipher comes from crypto/aes.
func ctr(block cipher.Block, dst, src []byte, iv uint64) {
	var counter, stream [aes.BlockSize]byte
	hi, lo := uint64(0), iv
	for off := 0; off < len(src); off += aes.BlockSize {
		binary.BigEndian.PutUint64(counter[:8], hi)
		binary.BigEndian.PutUint64(counter[8:], lo)
		block.Encrypt(stream[:], counter[:])
		end := min(off+aes.BlockSize, len(src))
		for i := off; i < end; i++ {
			dst[i] = src[i] ^ stream[i-off]
		}
		lo++
		if lo == 0 {
			hi++
		}
	}
}
