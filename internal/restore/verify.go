package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// An mmap restore reads pages through the kernel, so nothing of thaw's sees
// them on the way in. mapCheck verifies them afterwards: it asks the kernel
// which pages of the mapping the process has mapped (/proc/self/pagemap: a
// page-table entry is present, or was swapped out) and checks each page not
// yet verified against the snapshot's checksum table.
//
// A present page that is still file-backed (pagemap's file bit) holds the
// image's bytes: it is checked in place, through the mapping. A page the
// guest has written is a private copy the kernel made from the image's page
// cache page when the write faulted; the copy no longer shows the image's
// bytes, so the page is re-read from the file (the page cache, usually) and
// that is checked: it is what the copy was made from.
//
// pagemap, not mincore: on a file mapping mincore reports the file's page
// cache residency, including read-ahead pages this process never mapped, so
// it would check (and blame) pages the guest cannot have seen.
type mapCheck struct {
	snap  *snapshot.Snapshot
	image *os.File // the mapped image, for pages the guest has copied
	mem   []byte   // the mapping: the image's pages, in order

	mu      sync.Mutex // serialises check and the pass ahead
	seen    []uint64   // bitmap: page verified while mapped
	entries []byte     // pagemap buffer, 8 bytes per page
	buf     []byte     // buffer for re-reads from the file

	// The pass ahead (startAhead) and what it found.
	stop, done chan struct{}
	aheadN     int64
	aheadBad   []int
	aheadErr   error
}

// aheadEvery is how often the pass ahead looks for newly mapped pages.
const aheadEvery = 2 * time.Millisecond

// startAhead verifies newly mapped pages while the first call runs, so that
// the check after it (on the response path) finds little left to do: a
// cold restore's first call spends most of its time waiting for page-ins,
// and the other core is free. The pass ahead checks every page against the
// file, never through the mapping, which the guest may be writing.
func (c *mapCheck) startAhead() {
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(aheadEvery)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			c.mu.Lock()
			n, bad, err := c.scan(false)
			c.aheadN += n
			c.aheadBad = append(c.aheadBad, bad...)
			c.aheadErr = err
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

// stopAhead ends the pass ahead, if one runs, and waits for it.
func (c *mapCheck) stopAhead() {
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop = nil
	}
}

// pagemap checks that /proc/self/pagemap can be read.
func pagemap() error {
	if _, err := engine.Pagemap(); err != nil {
		return fmt.Errorf("mmap restores verify pages through /proc/self/pagemap: %v: %w", err, errdefs.ErrUnavailable)
	}
	return nil
}

func newMapCheck(snap *snapshot.Snapshot, image *os.File, mem []byte) *mapCheck {
	pages := len(mem) / snapshot.PageSize
	return &mapCheck{snap: snap, image: image, mem: mem,
		seen: make([]uint64, (pages+63)/64), entries: make([]byte, 8*pages)}
}

// check verifies the pages mapped since the last check, the guest not
// running. It returns the number of pages verified (by the pass ahead too)
// and the page numbers that failed.
func (c *mapCheck) check() (verified int64, bad []int, err error) {
	c.stopAhead()
	c.mu.Lock()
	defer c.mu.Unlock()
	verified, bad, err = c.scan(true)
	verified, bad, err = verified+c.aheadN, append(bad, c.aheadBad...), errors.Join(c.aheadErr, err)
	c.aheadN, c.aheadBad, c.aheadErr = 0, nil, nil
	return verified, bad, err
}

// scan verifies the pages mapped since the last scan; inPlace allows
// checking file-backed pages through the mapping (only while the guest is
// not running).
func (c *mapCheck) scan(inPlace bool) (verified int64, bad []int, err error) {
	if err := pagemap(); err != nil {
		return 0, nil, err
	}
	if len(c.mem) == 0 {
		return 0, nil, nil
	}
	if err := engine.ReadPagemap(uintptr(unsafe.Pointer(&c.mem[0])), c.entries); err != nil {
		return 0, nil, err
	}
	var mapped, copied []int
	for p := 0; p < len(c.entries)/8; p++ {
		e := binary.LittleEndian.Uint64(c.entries[8*p:])
		word, bit := p/64, uint64(1)<<(p%64)
		if e&(engine.PagemapPresent|engine.PagemapSwapped) == 0 {
			// Unmapped, or reclaimed since it was verified: a later fault
			// reads it again, so it must be checked again.
			c.seen[word] &^= bit
			continue
		}
		if c.seen[word]&bit != 0 {
			continue
		}
		c.seen[word] |= bit
		if inPlace && e&engine.PagemapPresent != 0 && e&engine.PagemapFile != 0 {
			mapped = append(mapped, p)
		} else {
			// Copied on write (or swapped, which only private copies
			// are): check the file's page it was copied from. The pass
			// ahead checks every page that way.
			copied = append(copied, p)
		}
	}
	bad, err = c.verify(mapped, copied)
	return int64(len(mapped) + len(copied)), bad, err
}

// verify checks mapped pages in place and copied pages (sorted) against
// the file, re-reading a run of consecutive pages per read, and returns the
// pages that fail their checksum.
func (c *mapCheck) verify(mapped, copied []int) (bad []int, err error) {
	for _, p := range mapped {
		if !c.snap.VerifyPage(p, c.mem[p*snapshot.PageSize:(p+1)*snapshot.PageSize]) {
			bad = append(bad, p)
		}
	}
	const maxRun = 64
	if len(copied) > 0 && c.buf == nil {
		c.buf = make([]byte, maxRun*snapshot.PageSize)
	}
	for i := 0; i < len(copied); {
		j := i + 1
		for j < len(copied) && j-i < maxRun && copied[j] == copied[j-1]+1 {
			j++
		}
		b := c.buf[:(j-i)*snapshot.PageSize]
		if _, err := c.image.ReadAt(b, int64(copied[i])*snapshot.PageSize); err != nil {
			return bad, fmt.Errorf("re-read image pages %d-%d: %w", copied[i], copied[j-1], err)
		}
		for k := i; k < j; k++ {
			o := (k - i) * snapshot.PageSize
			if !c.snap.VerifyPage(copied[k], b[o:o+snapshot.PageSize]) {
				bad = append(bad, copied[k])
			}
		}
		i = j
	}
	return bad, nil
}
