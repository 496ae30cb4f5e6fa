package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/internal/fn"
	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

// TestCTR checks the hand-written CTR loop against crypto/cipher's CTR mode
// and that applying it twice decrypts.
func TestCTR(t *testing.T) {
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 15, 16, 17, 1000} {
		msg := message(n, 7)
		got := make([]byte, n)
		ctr(block, got, msg, 1)
		iv := make([]byte, aes.BlockSize)
		binary.BigEndian.PutUint64(iv[8:], 1)
		want := make([]byte, n)
		cipher.NewCTR(block, iv).XORKeyStream(want, msg)
		if !bytes.Equal(got, want) {
			t.Errorf("n=%d: ciphertext differs from crypto/cipher CTR", n)
		}
		back := make([]byte, n)
		ctr(block, back, got, 1)
		if !bytes.Equal(back, msg) {
			t.Errorf("n=%d: decryption does not give the message back", n)
		}
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	block, _ := aes.NewCipher(key)
	for _, tc := range []struct {
		name, method, target string
		body                 []byte
		length               int
	}{
		{"default", http.MethodGet, "/", nil, 16384},
		{"sized", http.MethodGet, "/?length=100&iterations=3&seed=9", nil, 100},
		{"post", http.MethodPost, "/", []byte("attack at dawn"), 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, tc.method, tc.target, tc.body, &got)
			if got.Length != tc.length || !got.RoundTrip {
				t.Errorf("got %+v", got)
			}
			if tc.body != nil {
				ct := make([]byte, len(tc.body))
				ctr(block, ct, tc.body, 1)
				if got.Ciphertext != fn.Digest(ct) {
					t.Errorf("ciphertext digest %s, want %s", got.Ciphertext, fn.Digest(ct))
				}
			}
		})
	}
	fntest.CheckDeterministic(t, h, "/", "/?length=5000&seed=3")
	fntest.CheckBad(t, h, http.MethodGet, "/?length=-1", "/?iterations=0", "/?iterations=1000", "/?seed=x")
}
