package restore

import (
	"os"

	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/uffd"
)

// Pager sessions opened ahead.
//
// Handing a new userfaultfd to the pager processes (pager.ServeSource: a
// request to the primary and one to the standby, each a wake-up of another
// process) was the longest stage of a small bulk restore's start: 1.5 ms on
// a loaded machine (docs/restore.md, "Fixed cost of a restore"). It does
// not need to be on the start: nothing about the session depends on the
// restore but the snapshot and the region. So a bulk restore whose region
// goes back to the pool opens, when it is done with the region, a new
// userfaultfd and a pager session for the same snapshot over the same
// range, without registering the range (no page of the region faults to
// it yet), and leaves them with the region (engine.Region.Bequeath). The
// next bulk restore that gets the region and restores the same snapshot
// takes them (engine.Region.Inherit): its start only fills the working set
// and registers the range. Any other restore closes them, off its start.
//
// A session opened ahead is a new session, not a reused one: the pager's
// record of the pages it served, its trace and its counters start empty,
// as for a session handed over on the start.

// ahead is a pager session opened for a region's next bulk restore.
type ahead struct {
	pager *pager.Pager
	id    string           // the snapshot's Source.String()
	local bool             // the snapshot's pages are local files
	spec  pager.Spec       // the range and options the session serves
	src   pager.SourceSpec // its files stay open for a restarted pager
	// image is memory.img's identity, for a local snapshot.
	image   os.FileInfo
	uffd    *uffd.FD
	session *pager.Session
	// ws is the working set the last restore filled from, ws.img still
	// open, which the next one reuses if ws.json has not changed
	// (snapshot.ReopenWorkingSet); nil if none.
	ws *snapshot.WorkingSet
}

// Close closes the session, its userfaultfd, its source files and its
// working set.
func (a *ahead) Close() error {
	err := a.session.Close()
	_ = a.uffd.Close()
	closeFiles(a.src.Files)
	_ = a.ws.Close()
	return err
}

// inherit takes the session opened ahead that the region's previous owner
// left, if any, into m.inherited, for the working set it keeps
// (keptWS) and then take; drop closes it if take did not.
func (m *Memory) inherit() {
	c := m.Region.Inherit(aheadKey)
	if c == nil {
		return
	}
	if a, ok := c.(*ahead); ok {
		m.inherited = a
		return
	}
	go c.Close()
}

// keptWS hands over the working set of the inherited session, if any and
// if the session was opened for src; another snapshot's is closed.
func (m *Memory) keptWS(src Source) *snapshot.WorkingSet {
	if m.inherited == nil {
		return nil
	}
	ws := m.inherited.ws
	m.inherited.ws = nil
	if m.inherited.id != src.String() {
		_ = ws.Close()
		return nil
	}
	return ws
}

// drop closes an inherited session that take did not install, in the
// background: closing it is a round trip to each pager process.
func (m *Memory) drop() {
	if a := m.inherited; a != nil {
		m.inherited = nil
		go a.Close()
	}
}

// fits reports whether a can serve a restore of src by pg with spec.
// For a local snapshot, memory.img must still be the file a has open: a
// snapshot directory replaced under the same name is another snapshot.
func (a *ahead) fits(pg *pager.Pager, src Source, spec pager.Spec) bool {
	if a.pager != pg || a.id != src.String() || a.spec != spec {
		return false
	}
	f := a.session.Failures()
	if f.Unavailable+f.Corrupt+f.Lost > 0 {
		return false
	}
	if snap := src.Local(); snap != nil {
		fi, err := os.Stat(snap.Path(snapshot.ImageFile))
		if err != nil || a.image == nil || !os.SameFile(fi, a.image) {
			return false
		}
	}
	return true
}

// aheadKey is the key of a session opened ahead among a region's bequests.
const aheadKey = "restore.ahead"

// take installs the session a restore of m inherited, if it fits, and
// reports whether it did. A session that does not fit is closed in the
// background: closing it is a round trip to each pager process.
func (r *Restorer) take(m *Memory, pg *pager.Pager, src Source, spec pager.Spec) bool {
	a := m.inherited
	if a == nil {
		return false
	}
	if !a.fits(pg, src, spec) {
		m.drop()
		return false
	}
	m.inherited = nil
	m.uffd, m.session, m.files, m.pagerSrc = a.uffd, a.session, a.src.Files, a.src
	m.stats.PagerAhead = true
	return true
}

// openAhead opens a's session for the region's next restore of the same
// snapshot, over the source files m held (a.src, whose ownership it
// takes), and bequeaths it to the region. It runs when m is released,
// after m's range is unregistered and its own session closed; a failure
// only means that the next restore hands a session over on its start.
func (m *Memory) openAhead(a *ahead) {
	ok := false
	defer func() {
		if !ok {
			closeFiles(a.src.Files)
			_ = a.ws.Close()
		}
	}()
	if !m.Region.Pooled() || a.pager == nil {
		return
	}
	if a.local {
		if len(a.src.Files) == 0 {
			return
		}
		fi, err := a.src.Files[0].Stat()
		if err != nil {
			return
		}
		a.image = fi
	}
	u, err := uffd.Open()
	if err != nil {
		return
	}
	sess, err := a.pager.ServeSource(u, a.src, a.spec)
	if err != nil {
		_ = u.Close()
		return
	}
	a.uffd, a.session, ok = u, sess, true
	m.Region.Bequeath(aheadKey, a)
}

// closeFiles closes every file of fs.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close()
		}
	}
}
