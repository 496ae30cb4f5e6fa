package store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func sampleManifest(t testing.TB, k *Keys) []byte {
	m := &Manifest{Tenant: k.tenant, Snapshot: "s1", Created: time.Unix(5, 0), ChunkSize: 4096, Files: []FileEntry{
		{Name: "mem.img", Size: 4096*2 + 10, Chunks: []ChunkRef{{Zero: true, Size: 4096}, {ID: ChunkID{1}, Size: 4096}, {ID: ChunkID{2}, Size: 10}}},
		{Name: "ws.img", Size: 8192 + 4096, ChunkSize: 8192, Chunks: []ChunkRef{{ID: ChunkID{3}, Size: 8192}, {ID: ChunkID{4}, Size: 4096}}},
		{Name: "empty", Size: 0},
	}}
	obj, err := k.encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestManifestRoundTrip(t *testing.T) {
	k, _ := NewKeys("acme", bytes.Repeat([]byte{1}, 32))
	m, err := k.decodeManifest("s1", sampleManifest(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 3 || m.Files[0].Chunks[2].Size != 10 || !m.Files[0].Chunks[0].Zero || m.Files[0].Chunks[1].ID != (ChunkID{1}) {
		t.Fatalf("decoded %+v", m)
	}
	if m.Files[0].ChunkSize != 4096 || m.Files[1].ChunkSize != 8192 || m.Files[1].Chunks[1].Size != 4096 || m.Files[2].ChunkSize != 4096 {
		t.Fatalf("per-file chunk sizes not kept: %+v", m.Files)
	}
	// A valid manifest stored under another snapshot's name is rejected.
	if _, err := k.decodeManifest("s2", sampleManifest(t, k)); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("renamed manifest: %v, want ErrCorrupt", err)
	}
}

// FuzzParseManifest feeds arbitrary plaintext to the manifest parser (what
// an attacker holding the key, or a bug, could produce): it must never
// panic or allocate without bound, and whatever it accepts must be
// self-consistent.
func FuzzParseManifest(f *testing.F) {
	k, _ := NewKeys("acme", bytes.Repeat([]byte{1}, 32))
	obj := sampleManifest(f, k)
	plain, err := newGCM(k.manifest).Open(nil, obj[len(manifestMagic)+8:envelopeHeader], obj[envelopeHeader:],
		manifestAAD(obj[:len(manifestMagic)+8], "acme", "s1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := parseManifest(p)
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		for _, fe := range m.Files {
			var sum int64
			for _, c := range fe.Chunks {
				sum += int64(c.Size)
				if c.Size > fe.ChunkSize || ValidChunkSize(fe.ChunkSize) != nil {
					t.Fatalf("chunk of %d bytes, file chunk size %d", c.Size, fe.ChunkSize)
				}
			}
			if sum != fe.Size {
				t.Fatalf("file %s: chunks sum to %d, size %d", fe.Name, sum, fe.Size)
			}
		}
	})
}

// FuzzDecodeManifest feeds arbitrary objects to the full decoder (what a
// hostile store could serve): only clean errors, never a manifest.
func FuzzDecodeManifest(f *testing.F) {
	k, _ := NewKeys("acme", bytes.Repeat([]byte{1}, 32))
	f.Add(sampleManifest(f, k))
	f.Add([]byte("THM1"))
	f.Fuzz(func(t *testing.T, obj []byte) {
		m, err := k.decodeManifest("s1", obj)
		if err == nil {
			if m == nil {
				t.Fatal("nil manifest without error")
			}
			return
		}
		if !errors.Is(err, errdefs.ErrCorrupt) && !errors.Is(err, errdefs.ErrUnauthorized) {
			t.Fatalf("error %v is neither ErrCorrupt nor ErrUnauthorized", err)
		}
	})
}

// TestManifestVersion1 checks that a manifest whose files all use the
// snapshot's chunk size is written in the first format, which older readers
// understand, and that each file then takes the snapshot's chunk size.
func TestManifestVersion1(t *testing.T) {
	k, _ := NewKeys("acme", bytes.Repeat([]byte{1}, 32))
	m := &Manifest{Tenant: k.tenant, Snapshot: "s1", Created: time.Unix(5, 0), ChunkSize: 8192, Files: []FileEntry{
		{Name: "mem.img", Size: 8192 + 1, Chunks: []ChunkRef{{ID: ChunkID{1}, Size: 8192}, {Zero: true, Size: 1}}},
	}}
	obj, err := k.encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := newGCM(k.manifest).Open(nil, obj[len(manifestMagic)+8:envelopeHeader], obj[envelopeHeader:],
		manifestAAD(obj[:len(manifestMagic)+8], "acme", "s1"))
	if err != nil {
		t.Fatal(err)
	}
	if plain[0] != manifestVersionV1 {
		t.Fatalf("version %d, want %d", plain[0], manifestVersionV1)
	}
	got, err := k.decodeManifest("s1", obj)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files[0].ChunkSize != 8192 {
		t.Fatalf("file chunk size %d, want the snapshot's 8192", got.Files[0].ChunkSize)
	}
}
