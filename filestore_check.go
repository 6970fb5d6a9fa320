package whycache

import (
	"context"
	"os"
)

// Check verifies the whole log: the MANIFEST, the magic of every segment,
// the sums of every frame, ids ascending across segments and within the
// range each segment's first id gives it, and that only the last segment
// has bytes after its last complete batch (an append in progress or a torn
// one). It reads every segment. Damage is reported with an error wrapping
// logstore.ErrCorrupt.
func (s *FileStore) Check(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	sc := fsScannerPool.Get().(*fsScanner)
	defer fsPutScanner(sc)
	return s.withSegments(func(m *fsManifest) error {
		var prev uint64
		for i, sg := range m.Segments {
			f, err := s.openSegment(sg.Name)
			if err != nil {
				return err
			}
			err = s.checkSegment(sc, f, m, i, prev)
			f.Close()
			if err != nil {
				return err
			}
			prev = sc.lastID
		}
		return nil
	})
}

// checkSegment verifies segment i of m, whose ids must be above prev.
func (s *FileStore) checkSegment(sc *fsScanner, f *os.File, m *fsManifest, i int, prev uint64) error {
	sg := m.Segments[i]
	if err := sc.start(f, 0, prev); err != nil {
		return err
	}
	for {
		b, ok, err := sc.nextBatch()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if b.firstID < sg.First || (i+1 < len(m.Segments) && b.lastID >= m.Segments[i+1].First) {
			return fsCorruptf("%s: ids %d..%d outside the segment's range", sg.Name, b.firstID, b.lastID)
		}
	}
	if i+1 == len(m.Segments) {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != sc.end {
		return fsCorruptf("%s: sealed segment has %d bytes after its last batch", sg.Name, fi.Size()-sc.end)
	}
	return nil
}
