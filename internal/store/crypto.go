package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// ChunkID names a chunk: HMAC-SHA256 of its plaintext under the tenant's
// dedup key.
type ChunkID [32]byte

// String returns the id in hex, as used in object names.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// ParseChunkID parses the hex form of a ChunkID.
func ParseChunkID(s string) (ChunkID, error) {
	var id ChunkID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("chunk id %q: %w", s, errdefs.ErrInvalid)
	}
	copy(id[:], b)
	return id, nil
}

// chunkMagic starts every stored chunk object; it versions the format.
const chunkMagic = "THC1"

// ChunkOverhead is the size a chunk object adds to its plaintext: the magic
// and the GCM tag.
const ChunkOverhead = len(chunkMagic) + 16

func (k *Keys) chunkID(plain []byte) ChunkID {
	m := hmac.New(sha256.New, k.dedup)
	m.Write(plain)
	var id ChunkID
	copy(id[:], m.Sum(nil))
	return id
}

// chunkKey derives the convergent key of a chunk: HKDF of the tenant's
// convergent secret with the plaintext's SHA-256 as info. Equal plaintexts
// of one tenant get equal keys; other tenants' keys differ.
func (k *Keys) chunkKey(plain []byte) ([32]byte, error) {
	var key [32]byte
	h := sha256.Sum256(plain)
	b, err := hkdf.Key(sha256.New, k.convergent, nil, "thaw/store/v1/chunk-key/"+string(h[:]), 32)
	if err != nil {
		return key, fmt.Errorf("deriving chunk key: %w", err)
	}
	copy(key[:], b)
	return key, nil
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// chunkNonce is deterministic: every chunk key encrypts exactly one
// plaintext (the key is derived from it), so a fixed nonce per key never
// encrypts two different messages, and equal chunks give equal ciphertext,
// which is what makes them dedupe.
func chunkNonce(key [32]byte) []byte {
	h := sha256.Sum256(append([]byte("thaw/store/v1/chunk-nonce/"), key[:]...))
	return h[:12]
}

// sealChunk encrypts plain under key, authenticating the chunk id too, so a
// valid chunk object stored under another chunk's name is rejected.
func sealChunk(id ChunkID, key [32]byte, plain []byte) []byte {
	out := make([]byte, len(chunkMagic), len(chunkMagic)+len(plain)+16)
	copy(out, chunkMagic)
	return newGCM(key[:]).Seal(out, chunkNonce(key), plain, id[:])
}

// openChunk authenticates and decrypts a chunk object. Any damage
// (tampering, truncation, a swapped object) is errdefs.ErrCorrupt.
func openChunk(id ChunkID, key [32]byte, obj []byte) ([]byte, error) {
	if len(obj) < ChunkOverhead || string(obj[:len(chunkMagic)]) != chunkMagic {
		return nil, fmt.Errorf("chunk %s: bad header or truncated (%d bytes): %w", id, len(obj), errdefs.ErrCorrupt)
	}
	plain, err := newGCM(key[:]).Open(nil, chunkNonce(key), obj[len(chunkMagic):], id[:])
	if err != nil {
		return nil, fmt.Errorf("chunk %s: authentication failed: %w", id, errdefs.ErrCorrupt)
	}
	return plain, nil
}

// wrappedKeyLen is the size of a wrapped chunk key: nonce, key, tag.
const wrappedKeyLen = 12 + 32 + 16

// wrapKey encrypts a chunk key under the tenant's wrap key, bound to the
// chunk id and tenant.
func (k *Keys) wrapKey(id ChunkID, key [32]byte) ([]byte, error) {
	out := make([]byte, 12, wrappedKeyLen)
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return newGCM(k.wrap).Seal(out, out[:12], key[:], k.wrapAAD(id)), nil
}

func (k *Keys) unwrapKey(id ChunkID, wrapped []byte) ([32]byte, error) {
	var key [32]byte
	if len(wrapped) != wrappedKeyLen {
		return key, fmt.Errorf("wrapped key of chunk %s: %d bytes: %w", id, len(wrapped), errdefs.ErrCorrupt)
	}
	b, err := newGCM(k.wrap).Open(nil, wrapped[:12], wrapped[12:], k.wrapAAD(id))
	if err != nil {
		return key, fmt.Errorf("wrapped key of chunk %s: authentication failed: %w", id, errdefs.ErrCorrupt)
	}
	copy(key[:], b)
	return key, nil
}

func (k *Keys) wrapAAD(id ChunkID) []byte {
	return append([]byte("thaw/store/v1/wrap/"+k.tenant+"/"), id[:]...)
}
