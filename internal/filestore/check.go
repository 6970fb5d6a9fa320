package filestore

import (
	"context"
	"fmt"
	"os"
)

// Check verifies the whole log: the MANIFEST; that the directory holds
// every segment it lists and none from beyond its history; every
// segment's magic and every frame's sums; ids ascending across segments
// and within the range each segment's first id gives it; every sealed
// segment ending exactly after its last complete batch, where the MANIFEST
// recorded; and that the tail holds every acknowledged byte intact (bytes
// beyond the acknowledged end that do not form complete batches are a
// torn tail or an append in progress, not an error). It reads every
// segment and takes no lock. Damage is reported with an error wrapping
// logstore.ErrCorrupt that names the file and the offset.
func (s *Store) Check(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	sc := getScanner()
	defer putScanner(sc)
	if err := s.checkOpen(); err != nil {
		return err
	}
	return s.withSegments(func(m *manifest) error {
		var prev uint64
		for i, sg := range m.Segments {
			f, err := s.openSegment(sg.Name)
			if err != nil {
				return err
			}
			err = s.checkSegment(ctx, sc, f, m, i, prev)
			f.Close()
			if err != nil {
				return err
			}
			prev = max(prev, sc.lastID)
		}
		return nil
	})
}

// checkSegment verifies segment i of m, whose ids must be above prev.
func (s *Store) checkSegment(ctx context.Context, sc *scanner, f *os.File, m *manifest, i int, prev uint64) error {
	check := s.readCheck(m, i, nil)
	check.lo = max(check.lo, prev+1) // ids ascend across segments
	if err := sc.start(f, segPos{}, check); err != nil {
		return err
	}
	for n := 0; ; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("filestore: check: %w", err)
			}
		}
		_, ok, err := sc.nextBatch()
		if err != nil || !ok {
			return err
		}
	}
}
