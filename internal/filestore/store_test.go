package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/storetest"
)

// testOpen opens a Store in dir and closes it (after a Check) when
// the test ends.
func testOpen(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(context.Background()); err != nil && !errors.Is(err, logstore.ErrClosed) {
			t.Errorf("Check: %v", err)
		}
		s.Close()
	})
	return s
}

// makeRecs builds records with the given contents.
func makeRecs(contents ...string) []logstore.Record {
	recs := make([]logstore.Record, len(contents))
	for i, c := range contents {
		recs[i] = logstore.Record{Contents: []byte(c)}
	}
	return recs
}

// readAll returns every record with low <= id <= high as id -> contents,
// failing the test when ids do not ascend.
func readAll(t testing.TB, s logstore.Store, low, high uint64) ([]uint64, map[uint64]string) {
	t.Helper()
	var ids []uint64
	got := map[uint64]string{}
	err := s.ReadUpdates(context.Background(), low, high, func(id uint64, c []byte) error {
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			t.Errorf("id %d delivered after %d", id, ids[len(ids)-1])
		}
		ids = append(ids, id)
		got[id] = string(c)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadUpdates(%d, %d): %v", low, high, err)
	}
	return ids, got
}

// logPoller tails a log as Instance.Update does, checking that ids ascend
// and come once.
type logPoller struct {
	s     logstore.Store
	last  uint64
	seen  map[uint64]string
	polls int
}

// poll reads every record after the last one seen.
func (p *logPoller) poll(t testing.TB) {
	t.Helper()
	if p.seen == nil {
		p.seen = map[uint64]string{}
	}
	p.polls++
	err := p.s.ReadUpdates(context.Background(), p.last+1, math.MaxUint64, func(id uint64, c []byte) error {
		if _, dup := p.seen[id]; dup || id <= p.last {
			t.Errorf("poller: id %d after %d (seen before: %v)", id, p.last, dup)
		}
		p.last = id
		p.seen[id] = string(c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pollUntil polls in a loop until done is closed, then once more.
func (p *logPoller) pollUntil(t testing.TB, done <-chan struct{}) {
	t.Helper()
	for {
		select {
		case <-done:
			p.poll(t)
			return
		default:
			p.poll(t)
		}
	}
}

// mustCommit commits contents and returns the last id.
func mustCommit(t testing.TB, s logstore.Store, contents ...string) uint64 {
	t.Helper()
	id, err := commitLast(context.Background(), s, makeRecs(contents...))
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return id
}

func TestCommitAndRead(t *testing.T) {
	ctx := context.Background()
	for _, seg := range []int64{0, 64, 200} {
		t.Run(fmt.Sprintf("segment=%d", seg), func(t *testing.T) {
			s := testOpen(t, t.TempDir(), Options{SegmentSize: seg, NoSync: true})
			want := map[uint64]string{}
			var last uint64
			for i := 0; i < 30; i++ {
				n := i%4 + 1
				contents := make([]string, n)
				for j := range contents {
					contents[j] = strings.Repeat(string(rune('a'+j)), i)
				}
				id := mustCommit(t, s, contents...)
				if id != last+uint64(n) {
					t.Fatalf("commit %d: last id %d, want %d", i, id, last+uint64(n))
				}
				for j, c := range contents {
					want[id-uint64(n-1)+uint64(j)] = c
				}
				last = id
			}
			if got, err := s.LatestUpdateID(ctx); err != nil || got != last {
				t.Fatalf("LatestUpdateID = %d, %v; want %d", got, err, last)
			}
			for _, r := range []struct{ low, high uint64 }{
				{0, math.MaxUint64}, {1, 1}, {5, 17}, {last, last}, {last + 1, math.MaxUint64}, {17, 5}, {40, 60},
			} {
				ids, got := readAll(t, s, r.low, r.high)
				var wantIDs []uint64
				for id := max(r.low, 1); id <= min(r.high, last); id++ {
					wantIDs = append(wantIDs, id)
					if got[id] != want[id] {
						t.Errorf("read [%d,%d]: id %d = %q, want %q", r.low, r.high, id, got[id], want[id])
					}
				}
				if fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
					t.Errorf("read [%d,%d]: ids %v, want %v", r.low, r.high, ids, wantIDs)
				}
			}
			if seg != 0 {
				m, err := s.manifest()
				if err != nil || len(m.Segments) < 2 {
					t.Errorf("segment size %d: %d segments (%v), want several", seg, len(m.Segments), err)
				}
			}
		})
	}
}

func TestPollerCursor(t *testing.T) {
	ctx := context.Background()
	s := testOpen(t, t.TempDir(), Options{SegmentSize: 4096, NoSync: true})
	r := testOpen(t, s.Dir(), Options{})
	var applied uint64
	for i := 0; i < 200; i++ {
		want := mustCommit(t, s, fmt.Sprint(i), fmt.Sprint(i, "b"))
		latest, err := r.LatestUpdateID(ctx)
		if err != nil || latest != want {
			t.Fatalf("LatestUpdateID = %d, %v; want %d", latest, err, want)
		}
		ids, got := readAll(t, r, applied+1, latest)
		if len(ids) != 2 || ids[0] != applied+1 || ids[1] != want || got[want] != fmt.Sprint(i, "b") {
			t.Fatalf("poll %d: ids %v contents %v, want %d..%d", i, ids, got, applied+1, want)
		}
		applied = latest
	}
	// Paging through the log from the start, two records at a time.
	var pos uint64 = 1
	for pos <= applied {
		ids, _ := readAll(t, r, pos, pos+1)
		if len(ids) != 2 || ids[0] != pos {
			t.Fatalf("page at %d: ids %v", pos, ids)
		}
		pos += 2
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a", "log")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.ID == (logstore.LogID{}) || info.Horizon != 0 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	last := mustCommit(t, s, "x", "y")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", manifestName, lockName, segmentName(1, 0)} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%q: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	s2 := testOpen(t, dir, Options{})
	info2, err := s2.Info(ctx)
	if err != nil || info2 != info {
		t.Fatalf("Info after reopen = %+v, %v; want %+v", info2, err, info)
	}
	if id := mustCommit(t, s2, "z"); id != last+1 {
		t.Fatalf("commit after reopen: id %d, want %d", id, last+1)
	}
	_, got := readAll(t, s2, 1, math.MaxUint64)
	if got[1] != "x" || got[2] != "y" || got[3] != "z" || len(got) != 3 {
		t.Fatalf("records after reopen: %v", got)
	}
}

func TestClosedAndCancelled(t *testing.T) {
	s := testOpen(t, t.TempDir(), Options{NoSync: true})
	mustCommit(t, s, "a")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	noop := func(uint64, []byte) error { return nil }
	keep := func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil }
	calls := map[string]func(ctx context.Context) error{
		"LatestUpdateID": func(ctx context.Context) error { _, err := s.LatestUpdateID(ctx); return err },
		"ReadUpdates":    func(ctx context.Context) error { return s.ReadUpdates(ctx, 1, 10, noop) },
		"Commit":         func(ctx context.Context) error { _, err := commitLast(ctx, s, makeRecs("b")); return err },
		"Info":           func(ctx context.Context) error { _, err := s.Info(ctx); return err },
		"Compact":        func(ctx context.Context) error { _, err := s.Compact(ctx, 10, 5, keep); return err },
		"Reset":          func(ctx context.Context) error { return s.Reset(ctx) },
		"Check":          func(ctx context.Context) error { return s.Check(ctx) },
	}
	for name, call := range calls {
		err := call(cancelled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled context: %v, want context.Canceled", name, err)
		}
		wantPrefixOnce(t, name+" with cancelled context", err)
	}
	if ids, _ := readAll(t, s, 1, 10); len(ids) != 1 {
		t.Fatalf("cancelled calls changed the log: ids %v", ids)
	}
	if info, _ := s.Info(context.Background()); info.Horizon != 0 {
		t.Fatalf("cancelled Compact raised the horizon to %d", info.Horizon)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, call := range calls {
		err := call(context.Background())
		if !errors.Is(err, logstore.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
		wantPrefixOnce(t, name+" after Close", err)
	}
	if err := s.Close(); !errors.Is(err, logstore.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func TestCloseInCallback(t *testing.T) {
	s := testOpen(t, t.TempDir(), Options{NoSync: true})
	mustCommit(t, s, "a", "b")
	var n int
	err := s.ReadUpdates(context.Background(), 1, 10, func(uint64, []byte) error {
		n++
		if n == 1 {
			return s.Close()
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("ReadUpdates with Close inside: n=%d err=%v", n, err)
	}
	if _, err := s.LatestUpdateID(context.Background()); !errors.Is(err, logstore.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestLimits(t *testing.T) {
	s := testOpen(t, t.TempDir(), Options{MaxRecordSize: 10, NoSync: true})
	if l := s.Limits(); l.MaxRecordSize != 10 || l.MaxSingleKeySize != maxSingleKeySize {
		t.Fatalf("Limits = %+v", l)
	}
	mustCommit(t, s, "0123456789")
	if _, err := commitLast(context.Background(), s, makeRecs("ok", "0123456789a")); !errors.Is(err, logstore.ErrTooLarge) {
		t.Fatalf("oversized record: %v, want ErrTooLarge", err)
	}
	if id, err := commitLast(context.Background(), s, nil); err != nil || id != 1 {
		t.Fatalf("empty Commit = %d, %v; want 1", id, err)
	}
	if ids, _ := readAll(t, s, 1, 10); len(ids) != 1 {
		t.Fatalf("failed commit left records: %v", ids)
	}
	if _, err := Open(t.TempDir(), Options{MaxRecordSize: math.MaxInt}); err == nil {
		t.Fatal("MaxRecordSize above the frame limit accepted")
	}
}

func TestGroupCommit(t *testing.T) {
	const goroutines, commits = 16, 40
	s := testOpen(t, t.TempDir(), Options{SegmentSize: 8 << 10})
	type batch struct {
		last uint64
		n    int
		tag  string
	}
	var mu sync.Mutex
	var batches []batch
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < commits; i++ {
				tag := fmt.Sprintf("g%d-%d", g, i)
				n := i%3 + 1
				contents := make([]string, n)
				for j := range contents {
					contents[j] = fmt.Sprintf("%s/%d", tag, j)
				}
				id, err := commitLast(context.Background(), s, makeRecs(contents...))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				batches = append(batches, batch{id, n, tag})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_, got := readAll(t, s, 1, math.MaxUint64)
	total := 0
	for _, b := range batches {
		for j := 0; j < b.n; j++ {
			id := b.last - uint64(b.n-1) + uint64(j)
			if want := fmt.Sprintf("%s/%d", b.tag, j); got[id] != want {
				t.Fatalf("id %d = %q, want %q", id, got[id], want)
			}
		}
		total += b.n
	}
	if len(got) != total {
		t.Fatalf("log holds %d records, commits made %d", len(got), total)
	}
}

func TestCommitContextWhileQueued(t *testing.T) {
	s := testOpen(t, t.TempDir(), Options{NoSync: true})
	// Hold the leadership so the next Commit queues behind it.
	s.qmu.Lock()
	s.leading = true
	s.qmu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error)
	go func() {
		_, err := commitLast(ctx, s, makeRecs("never"))
		res <- err
	}()
	for queued := false; !queued; {
		s.qmu.Lock()
		queued = len(s.queue) == 1
		s.qmu.Unlock()
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Commit after cancel: %v", err)
	}
	s.qmu.Lock()
	s.leading = false
	n := len(s.queue)
	s.qmu.Unlock()
	if n != 0 {
		t.Fatalf("cancelled request left in queue")
	}
	if id := mustCommit(t, s, "a"); id != 1 {
		t.Fatalf("next commit id %d, want 1", id)
	}
}

// segPath returns the path of the only or last segment of s.
func segPath(t *testing.T, s *Store) string {
	t.Helper()
	m, err := s.manifest()
	if err != nil || len(m.Segments) == 0 {
		t.Fatalf("manifest: %v, %d segments", err, len(m.Segments))
	}
	return s.path(m.Segments[len(m.Segments)-1].Name)
}

// appendFile appends raw bytes to a file.
func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func TestTornTail(t *testing.T) {
	// Bytes a writer that died mid-append leaves after the acknowledged
	// end: invisible to readers, truncated by the next writer.
	ctx := context.Background()
	frame := appendFrame(nil, 3, 7, true, false, []byte("torn record"))
	unfinished := appendFrame(appendFrame(nil, 3, 7, false, false, []byte("a")), 4, 7, false, false, []byte("b"))
	badSum := bytes.Clone(frame)
	badSum[len(badSum)-1] ^= 1
	hl := format2.headerLen()
	tails := []struct {
		name string
		data []byte
	}{
		{"partial header", frame[:10]},
		{"partial contents", frame[:hl+4]},
		{"partial sum", frame[:len(frame)-3]},
		{"frames without batch end", unfinished},
		{"unfinished then partial", append(bytes.Clone(unfinished), frame[:20]...)},
		{"zeros", make([]byte, 100)},
		{"garbage", bytes.Repeat([]byte{0xa5, 0x17, 0x3c}, 40)},
		{"last frame with bad sum", badSum},
		{"bad frame then good frame", append(bytes.Clone(badSum), appendFrame(nil, 4, 7, true, false, []byte("x"))...)},
	}
	for _, tc := range tails {
		t.Run(tc.name, func(t *testing.T) {
			s := testOpen(t, t.TempDir(), Options{})
			mustCommit(t, s, "one")
			mustCommit(t, s, "two")
			seg := segPath(t, s)
			clean, _ := os.ReadFile(seg)
			appendFile(t, seg, tc.data)

			r := testOpen(t, s.Dir(), Options{})
			if ids, _ := readAll(t, r, 1, math.MaxUint64); len(ids) != 2 {
				t.Fatalf("reader sees ids %v, want [1 2]", ids)
			}
			if latest, err := r.LatestUpdateID(ctx); err != nil || latest != 2 {
				t.Fatalf("LatestUpdateID = %d, %v; want 2", latest, err)
			}
			c, err := r.Commit(ctx, logstore.LogID{}, makeRecs("three"))
			if err != nil || c.First != 3 || c.Last != 3 {
				t.Fatalf("commit after torn tail: %+v, %v; want id 3", c, err)
			}
			data, _ := os.ReadFile(seg)
			if want := appendFrame(clean, 3, c.Nonce, true, false, []byte("three")); !bytes.Equal(data, want) {
				t.Fatalf("segment after recovery has %d bytes, want %d (torn tail truncated)", len(data), len(want))
			}
			if _, got := readAll(t, s, 1, math.MaxUint64); got[3] != "three" || len(got) != 3 {
				t.Fatalf("records after recovery: %v", got)
			}
		})
	}
}

func TestDamage(t *testing.T) {
	// Each case damages one byte of the first of three committed frames
	// (offsets are relative to the frame's start).
	hl := format2.headerLen()
	for _, tc := range []struct {
		name string
		at   int
	}{
		{"length", 1},
		{"id", 6},
		{"nonce", 14},
		{"flags", 20},
		{"header sum", 22},
		{"contents", hl + 2},
		{"sum", hl + 5 + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testOpen(t, t.TempDir(), Options{NoSync: true})
			mustCommit(t, s, "first")
			mustCommit(t, s, "second", "third")
			seg := segPath(t, s)
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			data[magicLen+tc.at] ^= 0x10
			if err := os.WriteFile(seg, data, 0o600); err != nil {
				t.Fatal(err)
			}
			r := testOpen(t, s.Dir(), Options{})
			err = r.ReadUpdates(context.Background(), 1, math.MaxUint64, func(uint64, []byte) error { return nil })
			if !errors.Is(err, logstore.ErrCorrupt) {
				t.Fatalf("ReadUpdates over damaged frame: %v, want ErrCorrupt", err)
			}
			if _, err := commitLast(context.Background(), r, makeRecs("x")); !errors.Is(err, logstore.ErrCorrupt) {
				t.Fatalf("Commit on damaged tail segment: %v, want ErrCorrupt", err)
			}
			if err := r.Check(context.Background()); !errors.Is(err, logstore.ErrCorrupt) {
				t.Fatalf("Check: %v, want ErrCorrupt", err)
			}
			// Reset is the way out; new ids stay above the damaged ones.
			if err := r.Reset(context.Background()); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			if id := mustCommit(t, r, "fresh"); id <= 3 {
				t.Fatalf("id %d after Reset reuses an id of the damaged log", id)
			}
		})
	}
}

func TestBadManifest(t *testing.T) {
	dir := t.TempDir()
	s := testOpen(t, dir, Options{NoSync: true})
	mustCommit(t, s, "a")
	good, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"", "{", "null", `{"version":2}`, strings.Replace(string(good), `"version": 2`, `"version": 7`, 1),
		strings.Replace(string(good), `"id_floor": 1`, `"id_floor": 0`, 1),
		strings.Replace(string(good), segmentName(1, 0), "../../etc/passwd", 1),
		string(good) + "{}",
	} {
		if err := os.WriteFile(filepath.Join(dir, manifestName+".new"), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Rename(filepath.Join(dir, manifestName+".new"), filepath.Join(dir, manifestName))
		if _, err := Open(dir, Options{}); !errors.Is(err, logstore.ErrCorrupt) {
			t.Errorf("MANIFEST %.40q: %v, want ErrCorrupt", bad, err)
		}
		if _, err := s.LatestUpdateID(context.Background()); !errors.Is(err, logstore.ErrCorrupt) {
			t.Errorf("open store, MANIFEST %.40q: %v, want ErrCorrupt", bad, err)
		}
	}
	os.WriteFile(filepath.Join(dir, manifestName), good, 0o600)
}

// compactEvenDropper drops records with even ids, appends "!" to ids
// divisible by 3 and keeps the rest.
func compactEvenDropper(id uint64, c []byte) ([]byte, bool, error) {
	switch {
	case id%2 == 0:
		return nil, false, nil
	case id%3 == 0:
		return append(bytes.Clone(c), '!'), true, nil
	}
	return c, true, nil
}

func TestCompact(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		seg   int64
		limit uint64
	}{
		{"one segment, all", 0, 40},
		{"one segment, prefix", 0, 17},
		{"many segments, all", 120, 40},
		{"many segments, prefix", 120, 23},
		{"limit above latest", 120, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testOpen(t, t.TempDir(), Options{SegmentSize: tc.seg, NoSync: true})
			want := map[uint64]string{}
			for i := 0; i < 20; i++ {
				last := mustCommit(t, s, fmt.Sprint("r", i, "a"), fmt.Sprint("r", i, "b"))
				want[last-1], want[last] = fmt.Sprint("r", i, "a"), fmt.Sprint("r", i, "b")
			}
			var stats logstore.CompactStats
			for id := uint64(1); id <= 40 && id <= tc.limit; id++ {
				stats.RecordsBefore++
				stats.BytesBefore += uint64(len(want[id]))
				c, keep, _ := compactEvenDropper(id, []byte(want[id]))
				if !keep {
					delete(want, id)
					continue
				}
				want[id] = string(c)
				stats.RecordsAfter++
				stats.BytesAfter += uint64(len(c))
			}
			var seen []uint64
			got, err := s.Compact(ctx, tc.limit, 7, func(id uint64, c []byte) ([]byte, bool, error) {
				seen = append(seen, id)
				return compactEvenDropper(id, c)
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != stats {
				t.Errorf("stats %+v, want %+v", got, stats)
			}
			if len(seen) != int(stats.RecordsBefore) || !sort.SliceIsSorted(seen, func(i, j int) bool { return seen[i] < seen[j] }) {
				t.Errorf("CompactFunc saw ids %v", seen)
			}
			_, gotRecs := readAll(t, s, 1, math.MaxUint64)
			if fmt.Sprint(gotRecs) != fmt.Sprint(want) {
				t.Errorf("after compaction:\n got %v\nwant %v", gotRecs, want)
			}
			if info, _ := s.Info(ctx); info.Horizon != 7 {
				t.Errorf("horizon %d, want 7", info.Horizon)
			}
			// The dropped last id is never reused.
			if latest, err := s.LatestUpdateID(ctx); err != nil || latest != 40 {
				t.Errorf("LatestUpdateID after compaction = %d, %v; want 40", latest, err)
			}
			if id := mustCommit(t, s, "after"); id != 41 {
				t.Errorf("commit after compaction: id %d, want 41", id)
			}
			entries, _ := os.ReadDir(s.Dir())
			m, _ := s.manifest()
			if len(entries) != len(m.Segments)+3 { // MANIFEST, lock, WATERMARK
				t.Errorf("directory holds %d files for %d segments", len(entries), len(m.Segments))
			}
			// A second pass that keeps everything changes nothing.
			before := fmt.Sprint(m.Segments)
			if _, err := s.Compact(ctx, tc.limit, 0, func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil }); err != nil {
				t.Fatal(err)
			}
			if m2, _ := s.manifest(); tc.seg == 0 && fmt.Sprint(m2.Segments) != before {
				t.Errorf("no-op compaction rewrote segments: %v -> %v", before, m2.Segments)
			}
		})
	}
}

func TestCompactDropAll(t *testing.T) {
	// Dropping every record keeps a mark for the last commit when it ends
	// at the horizon, and nothing when it ends below.
	ctx := context.Background()
	for _, horizon := range []uint64{10, 11} {
		t.Run(fmt.Sprint("horizon=", horizon), func(t *testing.T) {
			s := testOpen(t, t.TempDir(), Options{SegmentSize: 100, NoSync: true})
			var last logstore.Committed
			for i := 0; i < 10; i++ {
				c, err := s.Commit(ctx, logstore.LogID{}, makeRecs("xxxxxxxxxxxxxxxxxxxxxxxxx"))
				if err != nil {
					t.Fatal(err)
				}
				last = c
			}
			drop := func(uint64, []byte) ([]byte, bool, error) { return nil, false, nil }
			if _, err := s.Compact(ctx, 10, horizon, drop); err != nil {
				t.Fatal(err)
			}
			m, _ := s.manifest()
			wantSegs := 1 // the mark of id 10
			if horizon > last.Last {
				wantSegs = 0
			}
			if len(m.Segments) != wantSegs {
				t.Fatalf("segments left after dropping everything: %v, want %d", m.Segments, wantSegs)
			}
			if ids, _ := readAll(t, s, 1, math.MaxUint64); len(ids) != 0 {
				t.Fatalf("records left: %v", ids)
			}
			res, err := s.Poll(ctx, logstore.PollRequest{After: last.Position()}, func(logstore.Entry) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			want := last.Position()
			if wantSegs == 0 {
				want.Nonce = 0 // only the id floor is left
			}
			if res.Latest != want || res.Verdict != logstore.Judge(last.Position(), want, horizon, false, 0) {
				t.Fatalf("Poll at the last commit: latest %+v verdict %v, want latest %+v", res.Latest, res.Verdict, want)
			}
			if latest, _ := s.LatestUpdateID(ctx); latest != 10 {
				t.Fatalf("LatestUpdateID = %d, want 10", latest)
			}
			if id := mustCommit(t, s, "next"); id != 11 {
				t.Fatalf("next id %d, want 11", id)
			}
		})
	}
}

func TestCompactErrors(t *testing.T) {
	ctx := context.Background()
	s := testOpen(t, t.TempDir(), Options{MaxRecordSize: 8, NoSync: true})
	mustCommit(t, s, "a", "b", "c")
	boom := errors.New("boom")
	for _, tc := range []struct {
		fn   logstore.CompactFunc
		want error
	}{
		{func(uint64, []byte) ([]byte, bool, error) { return []byte("123456789"), true, nil }, logstore.ErrTooLarge},
		{func(id uint64, c []byte) ([]byte, bool, error) {
			if id == 3 {
				return nil, false, boom
			}
			return nil, false, nil
		}, boom},
	} {
		if _, err := s.Compact(ctx, 3, 0, tc.fn); !errors.Is(err, tc.want) {
			t.Errorf("Compact: %v, want %v", err, tc.want)
		}
		if _, got := readAll(t, s, 1, 10); fmt.Sprint(got) != "map[1:a 2:b 3:c]" {
			t.Errorf("failed compaction changed the log: %v", got)
		}
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 4 {
		t.Errorf("failed compactions left files: %d entries", len(entries))
	}
}

func TestCompactCallsStore(t *testing.T) {
	ctx := context.Background()
	s := testOpen(t, t.TempDir(), Options{NoSync: true})
	other := testOpen(t, s.Dir(), Options{NoSync: true})
	mustCommit(t, s, "a")
	mustCommit(t, s, "b")
	var committed uint64
	_, err := s.Compact(ctx, 2, 0, func(id uint64, c []byte) ([]byte, bool, error) {
		if id == 1 {
			// Commit and read from inside the callback, on both handles.
			committed = mustCommit(t, other, "during")
			mustCommit(t, s, "during2")
			if ids, _ := readAll(t, other, 1, math.MaxUint64); len(ids) != 4 {
				t.Errorf("read inside CompactFunc: %v", ids)
			}
		}
		return append(bytes.Clone(c), '+'), true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, got := readAll(t, s, 1, math.MaxUint64)
	if got[1] != "a+" || got[2] != "b+" || got[committed] != "during" || got[committed+1] != "during2" || len(got) != 4 {
		t.Fatalf("after compaction with concurrent commits: %v", got)
	}
}

func TestReset(t *testing.T) {
	ctx := context.Background()
	s := testOpen(t, t.TempDir(), Options{SegmentSize: 64, NoSync: true})
	other := testOpen(t, s.Dir(), Options{NoSync: true})
	for i := 0; i < 10; i++ {
		mustCommit(t, s, "record")
	}
	before, _ := s.Info(ctx)
	if _, err := s.Compact(ctx, 0, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := other.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Info(ctx)
	if after.ID == before.ID || after.Horizon != 0 {
		t.Fatalf("Info after Reset = %+v (before %+v)", after, before)
	}
	if latest, _ := s.LatestUpdateID(ctx); latest != 10 {
		t.Fatalf("LatestUpdateID after Reset = %d, want 10", latest)
	}
	if ids, _ := readAll(t, s, 1, math.MaxUint64); len(ids) != 0 {
		t.Fatalf("records after Reset: %v", ids)
	}
	if id := mustCommit(t, s, "new"); id != 11 {
		t.Fatalf("first id after Reset %d, want 11", id)
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 4 {
		t.Fatalf("%d files after Reset and one commit, want MANIFEST, lock, WATERMARK, one segment", len(entries))
	}
}

func TestRemovesOrphans(t *testing.T) {
	ctx := context.Background()
	s := testOpen(t, t.TempDir(), Options{NoSync: true})
	mustCommit(t, s, "a")
	orphans := []string{segmentName(99, 0), "compact-123.tmp", manifestName + ".tmp"}
	for _, name := range orphans {
		os.WriteFile(s.path(name), []byte("x"), 0o600)
	}
	held, err := os.CreateTemp(s.Dir(), "compact-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if ok, err := tryLockFile(held); !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	if _, err := s.Compact(ctx, 1, 0, func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil }); err != nil {
		t.Fatal(err)
	}
	for _, name := range orphans {
		if _, err := os.Stat(s.path(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("orphan %s not removed: %v", name, err)
		}
	}
	if _, err := os.Stat(held.Name()); err != nil {
		t.Errorf("held temporary file removed: %v", err)
	}
}

func TestCompactWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{SegmentSize: 2 << 10, NoSync: true}
	w := testOpen(t, dir, opts)
	poller := testOpen(t, dir, opts)
	compactor := testOpen(t, dir, opts)
	const writers, commits = 3, 150

	var mu sync.Mutex
	committed := map[uint64]string{}
	dropped := map[uint64]bool{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < commits; i++ {
				c := fmt.Sprintf("w%d-%d", g, i)
				id, err := commitLast(ctx, w, makeRecs(c))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				committed[id] = c
				mu.Unlock()
			}
		}()
	}
	compacted := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			select {
			case <-done:
				compacted <- nil
				return
			default:
			}
			var limit uint64
			if limit, err = compactor.LatestUpdateID(ctx); err != nil {
				break
			}
			_, err = compactor.Compact(ctx, limit, 0, func(id uint64, c []byte) ([]byte, bool, error) {
				if id%5 == 0 {
					mu.Lock()
					dropped[id] = true
					mu.Unlock()
					return nil, false, nil
				}
				return c, true, nil
			})
		}
		compacted <- err
	}()
	p := logPoller{s: poller}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	p.pollUntil(t, writersDone)
	close(done)
	if err := <-compacted; err != nil {
		t.Fatalf("Compact: %v", err)
	}
	p.poll(t)
	seen := p.seen
	_, final := readAll(t, w, 1, math.MaxUint64)
	for id, c := range committed {
		switch {
		case seen[id] != "" && seen[id] != c:
			t.Errorf("poller saw id %d as %q, committed %q", id, seen[id], c)
		case seen[id] == "" && !dropped[id]:
			t.Errorf("poller missed id %d, which was not dropped", id)
		case final[id] == "" && !dropped[id]:
			t.Errorf("record %d lost", id)
		case final[id] != "" && dropped[id]:
			t.Errorf("dropped record %d still there", id)
		}
	}
	if len(committed) != writers*commits {
		t.Errorf("%d ids for %d commits", len(committed), writers*commits)
	}
}

func TestReaderSurvivesCompaction(t *testing.T) {
	// A reader in the middle of a segment that compaction replaces
	// continues from its position in the new file.
	ctx := context.Background()
	s := testOpen(t, t.TempDir(), Options{SegmentSize: 200, NoSync: true})
	for i := 0; i < 40; i++ {
		mustCommit(t, s, fmt.Sprint("v", i+1))
	}
	other := testOpen(t, s.Dir(), Options{NoSync: true})
	var ids []uint64
	err := s.ReadUpdates(ctx, 1, math.MaxUint64, func(id uint64, c []byte) error {
		ids = append(ids, id)
		if id == 3 {
			_, err := other.Compact(ctx, 40, 0, func(id uint64, c []byte) ([]byte, bool, error) {
				return c, id%2 == 1, nil
			})
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not ascending: %v", ids)
		}
	}
	if ids[len(ids)-1] != 39 || len(ids) < 20 || len(ids) > 40 {
		t.Fatalf("read during compaction saw %v", ids)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) (logstore.Store, func(t *testing.T) logstore.Store) {
			dir := t.TempDir()
			open := func(t *testing.T) logstore.Store {
				s, err := Open(dir, Options{SegmentSize: 64 << 10})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			return open(t), open
		},
		Backup: backupDir,
	})
}

func TestCompactCopiesLateCommits(t *testing.T) {
	// Batches committed between the unlocked rewrite of the tail segment and
	// its installation are carried over into the new file.
	ctx := context.Background()
	s := testOpen(t, t.TempDir(), Options{NoSync: true})
	other := testOpen(t, s.Dir(), Options{NoSync: true})
	mustCommit(t, s, "a", "b")
	m, err := s.manifest()
	if err != nil {
		t.Fatal(err)
	}
	g := &compactGroup{segs: m.Segments, logID: m.id}
	defer g.discard()
	dropFirst := func(id uint64, c []byte) ([]byte, bool, error) { return c, id != 1, nil }
	if err := s.rewriteGroup(ctx, g, m, 0, 2, dropFirst); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, other, "late1")
	mustCommit(t, other, "late2", "late3")
	if err := s.withWriterLock(ctx, func() error { return s.installGroupLocked(g) }); err != nil {
		t.Fatal(err)
	}
	if _, got := readAll(t, other, 1, math.MaxUint64); fmt.Sprint(got) != "map[2:b 3:late1 4:late2 5:late3]" {
		t.Fatalf("after compaction with late commits: %v", got)
	}
	if id := mustCommit(t, other, "next"); id != 6 {
		t.Fatalf("next id %d, want 6", id)
	}
}

// copyDir copies the directory from to to (which must not exist) with
// cp -a, as an operator copies a store directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", from, to, err, out)
	}
}

// backupDir is the conformance harness's Backup: it copies the store's
// directory with cp -a and restores it by replacing the directory with the
// copy.
func backupDir(t *testing.T, s logstore.Store) func(t *testing.T) {
	dir := s.(*Store).Dir()
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, dir, backup)
	return func(t *testing.T) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		copyDir(t, backup, dir)
	}
}

// commitLast commits recs and returns the id of the last one.
func commitLast(ctx context.Context, s logstore.Store, recs []logstore.Record) (uint64, error) {
	res, err := s.Commit(ctx, logstore.LogID{}, recs)
	return res.Last, err
}
