package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Manifest describes one snapshot: its files and, for each, the chunks it
// is cut into. It is stored encrypted and authenticated under
// "manifests/<tenant>/<snapshot>".
type Manifest struct {
	Tenant   string
	Snapshot string
	Created  time.Time
	// ChunkSize is the snapshot's default chunk size; a file may be cut
	// into chunks of another size (FileEntry.ChunkSize).
	ChunkSize int
	Files     []FileEntry
}

// FileEntry is one file of a snapshot.
type FileEntry struct {
	Name string
	Size int64
	// ChunkSize is the size of this file's chunks (the last may be
	// shorter). A working-set file, always read whole, is cut into larger
	// chunks than a memory image, so that it takes few requests.
	ChunkSize int
	Chunks    []ChunkRef
}

// ChunkRef is one chunk of a file. A zero chunk is all zero bytes and is not
// stored; ID and Key are unset for it.
type ChunkRef struct {
	ID   ChunkID
	Size int
	Zero bool
	// Key is the chunk's convergent key, in clear in memory only; the
	// manifest holds it wrapped with the tenant's wrap key.
	Key [32]byte
	// wrapped is the encoded wrapped key, between decoding and unwrapping.
	wrapped []byte
}

const (
	manifestMagic = "THM1"
	// manifestVersion 1 has one chunk size for all files; version 2
	// records a chunk size per file. A manifest whose files all use the
	// snapshot's chunk size is still written as version 1, so older
	// readers can read it.
	manifestVersion   = 2
	manifestVersionV1 = 1
	// Limits of the decoder, so that a damaged or hostile manifest cannot
	// make it allocate without bound.
	maxNameLen     = 255
	maxFiles       = 4096
	minChunkSize   = 4 << 10
	maxChunkSize   = 64 << 20
	maxFileSize    = 1 << 40
	envelopeHeader = len(manifestMagic) + 8 + 12
)

// ValidChunkSize reports whether n is an acceptable chunk size: a multiple
// of 4 KiB (whole pages) between 4 KiB and 64 MiB.
func ValidChunkSize(n int) error {
	if n < minChunkSize || n > maxChunkSize || n%minChunkSize != 0 {
		return fmt.Errorf("chunk size %d: want a multiple of 4 KiB between 4 KiB and 64 MiB: %w", n, errdefs.ErrInvalid)
	}
	return nil
}

// manifestName is the object name of a snapshot's manifest.
func manifestName(tenant, snapshot string) string { return "manifests/" + tenant + "/" + snapshot }

// chunkName is the object name of a chunk. Chunks are namespaced per tenant
// (their ids are keyed per tenant anyway), so garbage collection of one
// tenant never has to read another tenant's manifests.
func chunkName(tenant string, id ChunkID) string { return "chunks/" + tenant + "/" + id.String() }

// encodeManifest serialises m, wrapping each chunk key, and encrypts the
// result under the tenant's manifest key.
func (k *Keys) encodeManifest(m *Manifest) ([]byte, error) {
	fileCS := func(f *FileEntry) int {
		if f.ChunkSize == 0 {
			return m.ChunkSize
		}
		return f.ChunkSize
	}
	version := uint64(manifestVersionV1)
	for i := range m.Files {
		if fileCS(&m.Files[i]) != m.ChunkSize {
			version = manifestVersion
		}
	}
	var p []byte
	p = binary.AppendUvarint(p, version)
	p = appendString(p, m.Tenant)
	p = appendString(p, m.Snapshot)
	p = binary.AppendVarint(p, m.Created.UnixNano())
	p = binary.AppendUvarint(p, uint64(m.ChunkSize))
	p = binary.AppendUvarint(p, uint64(len(m.Files)))
	for i, f := range m.Files {
		p = appendString(p, f.Name)
		p = binary.AppendUvarint(p, uint64(f.Size))
		if version >= 2 {
			p = binary.AppendUvarint(p, uint64(fileCS(&m.Files[i])))
		}
		p = binary.AppendUvarint(p, uint64(len(f.Chunks)))
		for _, c := range f.Chunks {
			if c.Zero {
				p = append(p, 1)
				p = binary.AppendUvarint(p, uint64(c.Size))
				continue
			}
			p = append(p, 0)
			p = binary.AppendUvarint(p, uint64(c.Size))
			p = append(p, c.ID[:]...)
			w, err := k.wrapKey(c.ID, c.Key)
			if err != nil {
				return nil, fmt.Errorf("wrapping chunk key: %w", err)
			}
			p = append(p, w...)
		}
	}
	out := make([]byte, envelopeHeader, envelopeHeader+len(p)+16)
	copy(out, manifestMagic)
	copy(out[len(manifestMagic):], k.id[:])
	nonce := out[len(manifestMagic)+8 : envelopeHeader]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return newGCM(k.manifest).Seal(out, nonce, p, manifestAAD(out[:len(manifestMagic)+8], m.Tenant, m.Snapshot)), nil
}

// manifestAAD binds the envelope to the manifest's name, so a valid
// manifest copied under another snapshot's name is rejected.
func manifestAAD(header []byte, tenant, snapshot string) []byte {
	return append(append([]byte(nil), header...), tenant+"\x00"+snapshot...)
}

// decodeManifest authenticates and decrypts the manifest object of
// tenant/snapshot and unwraps its chunk keys. A manifest written under
// another secret is errdefs.ErrUnauthorized; any other failure is
// errdefs.ErrCorrupt.
func (k *Keys) decodeManifest(snapshot string, obj []byte) (*Manifest, error) {
	if len(obj) < envelopeHeader+16 || string(obj[:len(manifestMagic)]) != manifestMagic {
		return nil, fmt.Errorf("manifest %s: bad header or truncated (%d bytes): %w", snapshot, len(obj), errdefs.ErrCorrupt)
	}
	if kid := obj[len(manifestMagic) : len(manifestMagic)+8]; !bytes.Equal(kid, k.id[:]) {
		return nil, fmt.Errorf("manifest %s was written with another store key (key id %x; this key is %s for tenant %s): %w",
			snapshot, kid, k.ID(), k.tenant, errdefs.ErrUnauthorized)
	}
	p, err := newGCM(k.manifest).Open(nil, obj[len(manifestMagic)+8:envelopeHeader], obj[envelopeHeader:],
		manifestAAD(obj[:len(manifestMagic)+8], k.tenant, snapshot))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: authentication failed: %w", snapshot, errdefs.ErrCorrupt)
	}
	m, err := parseManifest(p)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", snapshot, err)
	}
	if m.Tenant != k.tenant || m.Snapshot != snapshot {
		return nil, fmt.Errorf("manifest %s: names %s/%s: %w", snapshot, m.Tenant, m.Snapshot, errdefs.ErrCorrupt)
	}
	for fi := range m.Files {
		for ci := range m.Files[fi].Chunks {
			c := &m.Files[fi].Chunks[ci]
			if c.Zero {
				continue
			}
			if c.Key, err = k.unwrapKey(c.ID, c.wrapped); err != nil {
				return nil, fmt.Errorf("manifest %s: %w", snapshot, err)
			}
			c.wrapped = nil
		}
	}
	return m, nil
}

// parseManifest decodes the plaintext of a manifest and checks that it is
// self-consistent: chunk sizes add up to file sizes, every chunk but the
// last of a file is full, names are unique. Keys stay wrapped.
func parseManifest(p []byte) (*Manifest, error) {
	d := decoder{p: p}
	version := d.uvarint()
	if version != manifestVersion && version != manifestVersionV1 && d.err == nil {
		return nil, fmt.Errorf("manifest version %d not supported: %w", version, errdefs.ErrCorrupt)
	}
	m := &Manifest{Tenant: d.string(), Snapshot: d.string()}
	m.Created = time.Unix(0, d.varint())
	cs := d.uvarint()
	nf := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if cs > maxChunkSize || ValidChunkSize(int(cs)) != nil {
		return nil, fmt.Errorf("chunk size %d: %w", cs, errdefs.ErrCorrupt)
	}
	m.ChunkSize = int(cs)
	snapCS := cs
	if nf > maxFiles {
		return nil, fmt.Errorf("%d files: %w", nf, errdefs.ErrCorrupt)
	}
	seen := map[string]bool{}
	for range nf {
		f := FileEntry{Name: d.string()}
		size := d.uvarint()
		cs := snapCS
		if version >= 2 {
			cs = d.uvarint()
		}
		nc := d.uvarint()
		if d.err != nil {
			return nil, d.err
		}
		if cs > maxChunkSize || ValidChunkSize(int(cs)) != nil {
			return nil, fmt.Errorf("file %s: chunk size %d: %w", f.Name, cs, errdefs.ErrCorrupt)
		}
		f.ChunkSize = int(cs)
		if f.Name == "" || seen[f.Name] {
			return nil, fmt.Errorf("file name %q empty or repeated: %w", f.Name, errdefs.ErrCorrupt)
		}
		seen[f.Name] = true
		if size > maxFileSize || nc != (size+cs-1)/cs || nc > uint64(len(d.p)) {
			return nil, fmt.Errorf("file %s: size %d with %d chunks: %w", f.Name, size, nc, errdefs.ErrCorrupt)
		}
		f.Size = int64(size)
		f.Chunks = make([]ChunkRef, nc)
		for i := range f.Chunks {
			c := &f.Chunks[i]
			flag := d.byte()
			csz := d.uvarint()
			want := cs
			if i == len(f.Chunks)-1 {
				want = size - cs*(nc-1)
			}
			if d.err == nil && (flag > 1 || csz != want) {
				return nil, fmt.Errorf("file %s chunk %d: flag %d size %d, want size %d: %w", f.Name, i, flag, csz, want, errdefs.ErrCorrupt)
			}
			c.Size, c.Zero = int(csz), flag == 1
			if !c.Zero {
				copy(c.ID[:], d.bytes(len(c.ID)))
				c.wrapped = d.bytes(wrappedKeyLen)
			}
			if d.err != nil {
				return nil, d.err
			}
		}
		m.Files = append(m.Files, f)
	}
	if d.err == nil && len(d.p) != 0 {
		return nil, fmt.Errorf("%d trailing bytes: %w", len(d.p), errdefs.ErrCorrupt)
	}
	return m, d.err
}

func appendString(p []byte, s string) []byte {
	return append(binary.AppendUvarint(p, uint64(len(s))), s...)
}

// decoder reads a manifest, remembering the first error so that callers
// check once per record.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("manifest truncated or malformed: %w", errdefs.ErrCorrupt)
	}
	d.p = nil
}

func (d *decoder) uvarint() uint64 { return decodeVarint(d, binary.Uvarint) }
func (d *decoder) varint() int64   { return decodeVarint(d, binary.Varint) }

// decodeVarint consumes one varint decoded by read (binary.Uvarint or
// binary.Varint), or fails d.
func decodeVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	v, n := read(d.p)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.p) < 1 {
		d.fail()
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) bytes(n int) []byte {
	if len(d.p) < n {
		d.fail()
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > maxNameLen {
		d.fail()
		return ""
	}
	return string(d.bytes(int(n)))
}
