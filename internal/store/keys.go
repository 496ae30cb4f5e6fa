package store

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// EnvKey is the environment variable holding the store's master secret
// when no key file is given.
const EnvKey = "THAW_STORE_KEY"

// maxKeyFileSize bounds a key file: a secret is a line of hex or base64.
const maxKeyFileSize = 4 << 10

// MinSecretLen is the minimum master secret length in bytes.
const MinSecretLen = 32

// Keys is one tenant's key material, every key derived with HKDF-SHA256
// from a master secret and the tenant name, each for one purpose (so no key
// is ever used in two constructions):
//
//   - dedup: the HMAC-SHA256 key naming chunks. Per tenant, so that chunk
//     names of two tenants never coincide and no tenant can confirm that
//     another stores a given plaintext.
//   - convergent: the secret from which each chunk's key is derived from
//     its plaintext hash (equal chunks of one tenant get equal keys).
//   - wrap: the AES-256-GCM key wrapping chunk keys inside manifests.
//   - manifest: the AES-256-GCM key encrypting manifests.
//
// The key id, an HMAC of a constant, is written in clear in every manifest
// so that opening a manifest with the wrong secret is reported as such
// instead of as corruption.
type Keys struct {
	tenant     string
	dedup      []byte
	convergent []byte
	wrap       []byte
	manifest   []byte
	id         [8]byte
}

// NewKeys derives the keys of tenant from the master secret.
func NewKeys(tenant string, secret []byte) (*Keys, error) {
	if err := validSegment(tenant); err != nil || tenant == "" || len(tenant) > 64 {
		return nil, fmt.Errorf("tenant %q: want 1-64 letters, digits, '.', '-', '_': %w", tenant, errdefs.ErrInvalid)
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("store secret is %d bytes, want at least %d: %w", len(secret), MinSecretLen, errdefs.ErrInvalid)
	}
	k := &Keys{tenant: tenant}
	for _, d := range []struct {
		dst  *[]byte
		info string
	}{
		{&k.dedup, "dedup"}, {&k.convergent, "convergent"}, {&k.wrap, "wrap"}, {&k.manifest, "manifest"},
	} {
		key, err := hkdf.Key(sha256.New, secret, nil, "thaw/store/v1/"+d.info+"/"+tenant, 32)
		if err != nil {
			return nil, fmt.Errorf("deriving %s key: %w", d.info, err)
		}
		*d.dst = key
	}
	m := hmac.New(sha256.New, k.manifest)
	m.Write([]byte("thaw/store/v1/key-id"))
	copy(k.id[:], m.Sum(nil))
	return k, nil
}

// Tenant returns the tenant the keys belong to.
func (k *Keys) Tenant() string { return k.tenant }

// ID returns the key id written in clear in manifests, in hex: it
// identifies the secret without revealing it.
func (k *Keys) ID() string { return hex.EncodeToString(k.id[:]) }

// ParseSecret decodes a master secret written as hex or standard base64
// (surrounding white space ignored).
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) >= MinSecretLen {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) >= MinSecretLen {
		return b, nil
	}
	return nil, fmt.Errorf("store secret: want at least %d bytes as hex or base64: %w", MinSecretLen, errdefs.ErrInvalid)
}

// GenerateSecret returns a new random master secret in hex, suitable for a
// key file or THAW_STORE_KEY.
func GenerateSecret() (string, error) {
	b := make([]byte, MinSecretLen)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// LoadSecret reads the master secret from keyFile, or from $THAW_STORE_KEY
// when keyFile is empty. The secret must never sit in clear beside the data
// it protects: a key file inside dataDir is refused (dataDir may be empty
// to skip the check), and so is a key file whose mode gives group or others
// any access (as ssh refuses such a private key): anyone who can read it
// can read every snapshot, guest memory included.
func LoadSecret(keyFile, dataDir string) ([]byte, error) {
	if keyFile == "" {
		v, ok := os.LookupEnv(EnvKey)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("no store key: set %s or pass a key file: %w", EnvKey, errdefs.ErrInvalid)
		}
		return ParseSecret(v)
	}
	if dataDir != "" {
		inside, err := within(keyFile, dataDir)
		if err != nil {
			return nil, err
		}
		if inside {
			return nil, fmt.Errorf("key file %s is inside the data directory %s; keep keys apart from the data they protect: %w", keyFile, dataDir, errdefs.ErrInvalid)
		}
	}
	f, err := os.Open(keyFile)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	// The mode of the file opened, not of the name: it cannot change
	// between the check and the read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("key file %s is not a regular file of at most %d bytes: %w", keyFile, maxKeyFileSize, errdefs.ErrInvalid)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it must be readable by its owner only (chmod 600 %s): %w", keyFile, perm, keyFile, errdefs.ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize))
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	secret, err := ParseSecret(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", keyFile, err)
	}
	return secret, nil
}

func within(path, dir string) (bool, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	rel, err := filepath.Rel(d, p)
	if err != nil {
		return false, nil
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)), nil
}
