package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/whycache/whycache/logstore"
)

// pollPage is how many records Poll delivers when PollRequest.Max is 0.
const pollPage = 1000

// errPollFull stops a delivery loop when Poll found a record beyond Max.
var errPollFull = errors.New("filestore: poll page full")

// Poll reads, in one snapshot of the log (one MANIFEST and the segments it
// names, up to the last complete batch of the tail segment when the call
// began), the identity, horizon and latest position, judges req.After with
// logstore.Judge, and then calls fn for the records after req.After.ID up
// to the latest id, at most req.Max of them (1000 when 0); see
// logstore.Store. Info, Latest, LatestTime and Verdict are settled before
// fn is first called. Only complete batches are delivered; marks are not.
// The nonce lookup is free on a poller's usual path (req.After is where
// its previous call ended); elsewhere it reads from the nearest remembered
// position in the segment holding req.After.ID, the reading delivery needs
// anyway. Poll never writes and takes no lock.
//
// Errors: fn's, as is, with the result settled and Next at the last entry
// fn accepted; damage (see the package documentation) wraps logstore.ErrCorrupt
// and names the file and offset: in a sealed segment it is returned after
// the entries before it, in the tail segment before any entry (the latest
// position cannot be settled past it); the context's, checked between
// batches. When a compaction replaces a segment before fn was first
// called, Poll starts over on the new MANIFEST; after that it ends the
// call early with More set.
func (s *Store) Poll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	if err := s.enter(ctx); err != nil {
		return logstore.PollResult{}, err
	}
	defer s.leave()
	limit := req.Max
	if limit <= 0 {
		limit = pollPage
	}
	sc := getScanner()
	defer putScanner(sc)
	for attempt := 0; ; attempt++ {
		m, err := s.manifest()
		if err != nil {
			return logstore.PollResult{Next: req.After}, err
		}
		p := poll{s: s, ctx: ctx, m: m, sc: sc, after: req.After, limit: limit, fn: fn}
		err = p.run()
		p.held.close()
		if errors.Is(err, errSegmentGone) {
			if p.delivered > 0 {
				p.res.More = true
				return p.res, nil
			}
			if err := s.segmentGone(m, err, attempt); err != nil {
				return p.res, err
			}
			continue
		}
		return p.res, err
	}
}

// poll is one attempt of a Poll call on one MANIFEST.
type poll struct {
	s     *Store
	ctx   context.Context
	m     *manifest
	sc    *scanner
	after logstore.Position
	limit int
	fn    func(logstore.Entry) error

	res       logstore.PollResult
	delivered int
	// held is the segment file head opened (the tail, when it changed),
	// read again by locate and deliver.
	held heldFile
}

// open opens segment name, or returns the held file; closeFile closes
// what open opened.
func (p *poll) open(name string) (f *os.File, closeFile func(), err error) {
	if p.held.f != nil && p.held.name == name {
		return p.held.f, func() {}, nil
	}
	f, err = p.s.openSegment(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// run settles the result and delivers the records.
func (p *poll) run() error {
	m := p.m
	p.res = logstore.PollResult{Info: logstore.Info{ID: m.id, Horizon: m.Horizon}, Next: p.after}
	latest, at, err := p.s.head(m, &p.held)
	if err != nil {
		return err
	}
	p.res.Latest, p.res.LatestTime = latest, at
	if p.after.ID >= latest.ID {
		p.res.Verdict = logstore.Judge(p.after, latest, m.Horizon, false, 0)
		return nil
	}
	i, from, found, nonce, err := p.locate()
	if err != nil {
		return err
	}
	p.res.Verdict = logstore.Judge(p.after, latest, m.Horizon, found, nonce)
	if !found {
		return nil // nothing at or above After.ID: no record to deliver
	}
	return p.deliver(i, from)
}

// locate finds where the records above After.ID start: segment i, from a
// position from before the first batch whose last id is at least After.ID
// (found false when no segment holds one), and that batch's nonce, the
// one logstore.Judge needs.
func (p *poll) locate() (i int, from segPos, found bool, nonce uint64, err error) {
	m, target := p.m, max(p.after.ID, 1)
	if c, ok := p.s.cursorAt(m.epoch, p.after.ID); ok && p.after.ID != 0 {
		for j, sg := range m.Segments {
			if sg.Name == c.seg {
				return j, c.pos, true, c.pos.nonce, nil
			}
		}
	}
	for i = m.segmentFor(target); i < len(m.Segments); i++ {
		sg := m.Segments[i]
		c, _ := p.s.cursor(sg.Name, m.epoch, target)
		from, found, nonce, err = p.locateIn(i, c.pos, target)
		if found || err != nil {
			return i, from, found, nonce, err
		}
	}
	return 0, segPos{}, false, 0, nil
}

// locateIn scans segment i from position from for the first batch whose
// last id is at least target and returns the position before it.
func (p *poll) locateIn(i int, from segPos, target uint64) (segPos, bool, uint64, error) {
	name := p.m.Segments[i].Name
	f, closeFile, err := p.open(name)
	if err != nil {
		return segPos{}, false, 0, err
	}
	defer closeFile()
	sc := p.sc
	if err := sc.start(f, from, p.s.readCheck(p.m, i, nil)); err != nil {
		return segPos{}, false, 0, err
	}
	for n := 0; ; n++ {
		if err := p.checkContext(n); err != nil {
			return segPos{}, false, 0, err
		}
		before := sc.pos()
		b, ok, err := sc.nextBatch()
		if err != nil || !ok {
			return segPos{}, false, 0, err
		}
		if b.lastID >= target {
			if before.lastID > from.lastID {
				p.s.noteCursor(cursor{seg: name, epoch: p.m.epoch, pos: before})
			}
			return before, true, b.nonce, nil
		}
	}
}

// checkContext returns the context's error every 256th batch.
func (p *poll) checkContext(n int) error {
	if n%256 != 255 {
		return nil
	}
	if err := p.ctx.Err(); err != nil {
		return fmt.Errorf("filestore: poll: %w", err)
	}
	return nil
}

// deliver calls fn for the records above After.ID up to Latest.ID, from
// position from in segment i on, at most limit of them.
func (p *poll) deliver(i int, from segPos) error {
	for ; i < len(p.m.Segments); i, from = i+1, (segPos{}) {
		if p.m.Segments[i].First > p.res.Latest.ID {
			return nil
		}
		done, err := p.deliverIn(i, from)
		if errors.Is(err, errPollFull) {
			p.res.More = true
			return nil
		}
		if done || err != nil {
			return err
		}
	}
	return nil
}

// deliverIn delivers from segment i; reached reports that Latest was
// reached.
func (p *poll) deliverIn(i int, from segPos) (reached bool, err error) {
	name := p.m.Segments[i].Name
	f, closeFile, err := p.open(name)
	if err != nil {
		return false, err
	}
	defer closeFile()
	sc, latest := p.sc, p.res.Latest.ID
	if err := sc.start(f, from, p.s.readCheck(p.m, i, nil)); err != nil {
		return false, err
	}
	resume := sc.pos()
	defer func() {
		if resume.lastID > from.lastID {
			p.s.noteCursor(cursor{seg: name, epoch: p.m.epoch, pos: resume})
		}
	}()
	entry := func(fr batchFrame) error {
		if fr.mark || fr.id <= p.after.ID || fr.id > latest {
			return nil
		}
		if p.delivered == p.limit {
			return errPollFull
		}
		if err := p.fn(logstore.Entry{ID: fr.id, Nonce: fr.nonce, Contents: fr.contents}); err != nil {
			return err
		}
		p.delivered++
		p.res.Next = logstore.Position{ID: fr.id, Nonce: fr.nonce}
		return nil
	}
	for n := 0; ; n++ {
		if err := p.checkContext(n); err != nil {
			return false, err
		}
		b, ok, err := sc.nextBatch()
		if err != nil || !ok {
			return false, err
		}
		if b.firstID > latest {
			return true, nil
		}
		if err := sc.eachFrame(b, entry); err != nil {
			return false, err
		}
		resume = sc.pos()
		if b.lastID >= latest {
			return true, nil
		}
	}
}
