package filestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// dirFiles returns every file of dir with its contents.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(data)
	}
	return files
}

// sameFiles fails the test unless dir holds exactly the files of before,
// byte for byte.
func sameFiles(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := dirFiles(t, dir)
	for name, data := range before {
		if got, ok := after[name]; !ok {
			t.Errorf("%s was removed", name)
		} else if got != data {
			t.Errorf("%s changed (%d bytes, was %d)", name, len(got), len(data))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s was added", name)
		}
	}
}

// flipByte flips one bit of the byte at off in the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x04
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// openRaw opens a Store that the test closes itself, without the
// Check of testOpen (the log is damaged on purpose).
func openRaw(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// collectAll reads every record from 1 on with ReadUpdates and returns them
// with the call's error.
func collectAll(s *Store) (map[uint64]string, error) {
	got := map[uint64]string{}
	err := s.ReadUpdates(context.Background(), 1, math.MaxUint64, func(id uint64, c []byte) error {
		got[id] = string(c)
		return nil
	})
	return got, err
}

// pollCollect polls from the start in pages of max records until More
// is false or an error, and returns the entries and the error.
func pollCollect(s *Store, max int) (map[uint64]string, error) {
	got := map[uint64]string{}
	req := logstore.PollRequest{Max: max}
	for {
		res, err := s.Poll(context.Background(), req, func(e logstore.Entry) error {
			got[e.ID] = string(e.Contents)
			return nil
		})
		if err != nil || !res.More {
			return got, err
		}
		req.After = res.Next
	}
}

// wantCorrupt fails the test unless err wraps logstore.ErrCorrupt and its
// message names every one of words.
func wantCorrupt(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	if !errors.Is(err, logstore.ErrCorrupt) {
		t.Fatalf("%s: %v, want ErrCorrupt", what, err)
	}
	wantPrefixOnce(t, what, err)
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not name %q", what, err, w)
		}
	}
}

// wantPrefixOnce fails the test unless err's message starts with this
// package's prefix and names no package twice.
func wantPrefixOnce(t *testing.T, what string, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "filestore: ") {
		t.Errorf("%s: error %q does not start with \"filestore: \"", what, msg)
	}
	for _, p := range []string{"whycache:", "filestore:", "logstore:"} {
		if strings.Count(msg, p) > 1 {
			t.Errorf("%s: error %q repeats %q", what, msg, p)
		}
	}
}

// damageLog commits 12 batches of 1 to 3 records to a log whose segments
// hold a few batches each, and returns the records by id.
func damageLog(t *testing.T, dir string) (*Store, map[uint64]string) {
	t.Helper()
	s := openRaw(t, dir, Options{SegmentSize: 200, NoSync: true})
	want := map[uint64]string{}
	for i := 0; i < 12; i++ {
		n := i%3 + 1
		contents := make([]string, n)
		for j := range contents {
			contents[j] = fmt.Sprintf("batch%d-record%d", i, j)
		}
		last := mustCommit(t, s, contents...)
		for j, c := range contents {
			want[last-uint64(n-1)+uint64(j)] = c
		}
	}
	return s, want
}

// recordsBelow returns the records of want with ids below id.
func recordsBelow(want map[uint64]string, id uint64) map[uint64]string {
	out := map[uint64]string{}
	for k, v := range want {
		if k < id {
			out[k] = v
		}
	}
	return out
}

// rawFrame is a frame of a clean segment, as readFrames lists it.
type rawFrame struct {
	start      int64
	id         uint64
	batchFirst uint64 // the first id of the frame's batch
}

// readFrames lists the frames of a clean format-2 segment file.
func readFrames(t *testing.T, path string) []rawFrame {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var frames []rawFrame
	var first uint64
	for off := magicLen; off < len(data); {
		h, ok := parseHeader(data[off:], format2)
		if !ok {
			t.Fatalf("%s: no frame at offset %d", path, off)
		}
		if first == 0 {
			first = h.id
		}
		frames = append(frames, rawFrame{start: int64(off), id: h.id, batchFirst: first})
		if h.last {
			first = 0
		}
		off += int(h.size)
	}
	return frames
}

func TestFlippedByteInSealedSegment(t *testing.T) {
	// One flipped bit anywhere in a sealed segment, and bytes added to or
	// cut from its end, are ErrCorrupt for every reader, naming the file
	// and the offset; the records before the damaged batch are delivered,
	// none after.
	hl := int64(format2.headerLen())
	for _, tc := range []struct {
		name string
		// damage damages the segment and returns the offset the error
		// names and the first id not delivered.
		damage func(t *testing.T, path string, frames []rawFrame, size int64, next uint64) (int64, uint64)
	}{
		{"contents of the last frame", func(t *testing.T, path string, fr []rawFrame, _ int64, _ uint64) (int64, uint64) {
			f := fr[len(fr)-1]
			flipByte(t, path, f.start+hl+1)
			return f.start, f.batchFirst
		}},
		{"length of the last frame", func(t *testing.T, path string, fr []rawFrame, _ int64, _ uint64) (int64, uint64) {
			f := fr[len(fr)-1]
			flipByte(t, path, f.start+1)
			return f.start, f.batchFirst
		}},
		{"nonce of the first frame", func(t *testing.T, path string, fr []rawFrame, _ int64, _ uint64) (int64, uint64) {
			flipByte(t, path, fr[0].start+14)
			return fr[0].start, fr[0].batchFirst
		}},
		{"sum of the first frame", func(t *testing.T, path string, fr []rawFrame, _ int64, _ uint64) (int64, uint64) {
			flipByte(t, path, fr[1].start-1)
			return fr[0].start, fr[0].batchFirst
		}},
		{"bytes appended", func(t *testing.T, path string, _ []rawFrame, size int64, next uint64) (int64, uint64) {
			appendFile(t, path, []byte("trailing"))
			return size, next
		}},
		{"last frame cut off", func(t *testing.T, path string, fr []rawFrame, _ int64, _ uint64) (int64, uint64) {
			f := fr[len(fr)-1]
			if err := os.Truncate(path, f.start); err != nil {
				t.Fatal(err)
			}
			return f.start, f.batchFirst
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, want := damageLog(t, dir)
			m, err := w.manifest()
			if err != nil || len(m.Segments) < 4 {
				t.Fatalf("want several segments: %v %v", m.Segments, err)
			}
			sg := m.Segments[1] // sealed
			path := filepath.Join(dir, sg.Name)
			fi, _ := os.Stat(path)
			at, firstLost := tc.damage(t, path, readFrames(t, path), fi.Size(), m.Segments[2].First)
			wantBefore := recordsBelow(want, firstLost)
			offset := fmt.Sprint("offset ", at)

			r := openRaw(t, dir, Options{})
			got, err := collectAll(r)
			wantCorrupt(t, "ReadUpdates", err, sg.Name, offset)
			if fmt.Sprint(got) != fmt.Sprint(wantBefore) {
				t.Errorf("ReadUpdates delivered %v,\nwant the records before the damage %v", got, wantBefore)
			}
			for _, max := range []int{0, 2} {
				p := openRaw(t, dir, Options{})
				got, err = pollCollect(p, max)
				wantCorrupt(t, fmt.Sprint("Poll with Max ", max), err, sg.Name, offset)
				if fmt.Sprint(got) != fmt.Sprint(wantBefore) {
					t.Errorf("Poll with Max %d delivered %v,\nwant %v", max, got, wantBefore)
				}
			}
			wantCorrupt(t, "Check", r.Check(context.Background()), sg.Name, offset)
			_, err = r.Compact(context.Background(), math.MaxUint64, 0, func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil })
			wantCorrupt(t, "Compact", err, sg.Name)
		})
	}
}

func TestFlippedByteInTailAfterCommit(t *testing.T) {
	// A bit flipped in the last frame of the active segment after its
	// Commit returned: readers report ErrCorrupt, a new writer refuses to
	// commit and truncates nothing, and the id is never handed out again.
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		at   func(frame int64) int64
	}{
		{"contents", func(f int64) int64 { return f + int64(format2.headerLen()) + 2 }},
		{"length", func(f int64) int64 { return f }},
		{"id", func(f int64) int64 { return f + 5 }},
		{"sum", func(f int64) int64 { return f + int64(format2.headerLen()) + int64(len("acknowledged")) + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openRaw(t, dir, Options{})
			mustCommit(t, w, "one")
			mustCommit(t, w, "two", "three")
			last, err := w.Commit(ctx, logstore.LogID{}, makeRecs("acknowledged"))
			if err != nil {
				t.Fatal(err)
			}
			seg := segPath(t, w)
			frames := readFrames(t, seg)
			frame := frames[len(frames)-1].start
			flipByte(t, seg, tc.at(frame))
			before := dirFiles(t, dir)
			offset := fmt.Sprint("offset ", frame)

			r := openRaw(t, dir, Options{})
			got, err := collectAll(r)
			wantCorrupt(t, "ReadUpdates", err, filepath.Base(seg), offset)
			if fmt.Sprint(got) != "map[1:one 2:two 3:three]" {
				t.Errorf("ReadUpdates delivered %v, want the records before the damage", got)
			}
			_, err = pollCollect(r, 0)
			wantCorrupt(t, "Poll", err, filepath.Base(seg), offset)
			_, err = r.LatestUpdateID(ctx)
			wantCorrupt(t, "LatestUpdateID", err, filepath.Base(seg))
			wantCorrupt(t, "Check", r.Check(ctx), filepath.Base(seg), offset)

			nw := openRaw(t, dir, Options{})
			_, err = nw.Commit(ctx, logstore.LogID{}, makeRecs("must not reuse id 4"))
			wantCorrupt(t, "Commit by a new writer", err, filepath.Base(seg), offset)
			sameFiles(t, dir, before)

			// Reset is the way out; it hands out no id the damaged log did.
			if err := nw.Reset(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := nw.Commit(ctx, logstore.LogID{}, makeRecs("after reset"))
			if err != nil || c.First <= last.Last {
				t.Fatalf("commit after Reset: %+v, %v; want ids above %d", c, err, last.Last)
			}
		})
	}
}

func TestManifestDeleted(t *testing.T) {
	// Segment files without a MANIFEST are lost metadata: ErrCorrupt, and
	// no file is changed, added or removed, whatever the options.
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := damageLog(t, dir)
	if err := os.Remove(filepath.Join(dir, manifestName)); err != nil {
		t.Fatal(err)
	}
	before := dirFiles(t, dir)
	for _, opts := range []Options{{}, {NoCreate: true}} {
		_, err := Open(dir, opts)
		wantCorrupt(t, fmt.Sprintf("Open(%+v)", opts), err, "MANIFEST", segmentName(1, 0))
	}
	_, err := s.Info(ctx)
	wantCorrupt(t, "Info on an open store", err, "MANIFEST")
	_, err = s.Commit(ctx, logstore.LogID{}, makeRecs("x"))
	wantCorrupt(t, "Commit on an open store", err, "MANIFEST")
	_, err = pollCollect(s, 0)
	wantCorrupt(t, "Poll on an open store", err, "MANIFEST")
	sameFiles(t, dir, before)
}

func TestOlderManifestBesideNewerSegments(t *testing.T) {
	// A MANIFEST restored from a backup beside segments written after it:
	// ErrCorrupt naming the newer files, which are left untouched, both for
	// a new handle and for one open across the restore.
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := damageLog(t, dir)
	old, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	m0, _ := s.manifest()
	for i := 0; i < 12; i++ {
		mustCommit(t, s, fmt.Sprint("newer", i), fmt.Sprint("newer", i, "b"))
	}
	m1, _ := s.manifest()
	if len(m1.Segments) <= len(m0.Segments) {
		t.Fatalf("no newer segments: %d, then %d", len(m0.Segments), len(m1.Segments))
	}
	newer := m1.Segments[len(m0.Segments)].Name
	if err := os.WriteFile(filepath.Join(dir, manifestName), old, 0o600); err != nil { // cp over it
		t.Fatal(err)
	}
	before := dirFiles(t, dir)
	_, err = Open(dir, Options{})
	wantCorrupt(t, "Open", err, newer, "MANIFEST")
	_, err = s.Commit(ctx, logstore.LogID{}, makeRecs("x"))
	wantCorrupt(t, "Commit on a store open across the restore", err, newer)
	_, err = collectAll(s)
	wantCorrupt(t, "ReadUpdates on a store open across the restore", err, newer)
	sameFiles(t, dir, before)
}

func TestSegmentMismatch(t *testing.T) {
	// A listed segment missing, and a segment whose frames lie outside the
	// range the MANIFEST gives it, are ErrCorrupt naming the segment.
	ctx := context.Background()
	t.Run("listed segment missing", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := damageLog(t, dir)
		m, _ := s.manifest()
		name := m.Segments[1].Name
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(t.TempDir(), name)); err != nil {
			t.Fatal(err)
		}
		before := dirFiles(t, dir)
		_, err := Open(dir, Options{})
		wantCorrupt(t, "Open", err, name, "missing")
		_, err = collectAll(s)
		wantCorrupt(t, "ReadUpdates on an open store", err, name)
		_, err = pollCollect(s, 0)
		wantCorrupt(t, "Poll on an open store", err, name)
		wantCorrupt(t, "Check", s.Check(ctx), name)
		sameFiles(t, dir, before)
	})
	t.Run("frames outside the listed range", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := damageLog(t, dir)
		m, _ := s.manifest()
		path := filepath.Join(dir, manifestName)
		data, _ := os.ReadFile(path)
		// Move the second segment's start above its first frames.
		from := fmt.Sprintf(`"first_id": %d,`, m.Segments[1].First)
		to := fmt.Sprintf(`"first_id": %d,`, m.Segments[1].First+1)
		bad := strings.Replace(string(data), from, to, 1)
		bad = strings.Replace(bad, fmt.Sprintf(`"generation": %d`, m.Generation), fmt.Sprintf(`"generation": %d`, m.Generation+1), 1)
		if bad == string(data) {
			t.Fatal("MANIFEST not edited")
		}
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		r := openRaw(t, dir, Options{})
		_, err := collectAll(r)
		wantCorrupt(t, "ReadUpdates", err, m.Segments[1].Name, "outside the segment's id range")
		_, err = pollCollect(r, 0)
		wantCorrupt(t, "Poll", err, m.Segments[1].Name, "outside")
		wantCorrupt(t, "Check", r.Check(ctx), m.Segments[1].Name, "outside")
	})
}

func TestPythonLayoutRefused(t *testing.T) {
	// A directory of Python whycache's file store is refused, naming
	// Python whycache, and nothing is added to it.
	dir := t.TempDir()
	for name, data := range map[string]string{"1.bin": "\x00\x00\x00\x01", "2.bin": "\x00\x00\x00\x01", "latest.repr": "2"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := dirFiles(t, dir)
	for _, opts := range []Options{{}, {NoCreate: true}} {
		_, err := Open(dir, opts)
		if err == nil || !strings.Contains(err.Error(), "Python whycache") || !strings.Contains(err.Error(), "latest.repr") {
			t.Errorf("Open(%+v) on a Python directory: %v, want a refusal naming Python whycache", opts, err)
		}
	}
	sameFiles(t, dir, before)
}

func TestNoCreate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"missing directory", func(*testing.T, string) {}},
		{"empty directory", func(t *testing.T, dir string) { os.Mkdir(dir, 0o700) }},
		{"directory with other files", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			tc.setup(t, dir)
			_, statErr := os.Stat(dir)
			var before map[string]string
			if statErr == nil {
				before = dirFiles(t, dir)
			}
			_, err := Open(dir, Options{NoCreate: true})
			if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), "whycache init-schema --store file:"+dir) {
				t.Fatalf("NoCreate: %v, want ErrNoLog saying how to create the log", err)
			}
			if statErr != nil {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("NoCreate created the directory: %v", err)
				}
			} else {
				sameFiles(t, dir, before)
			}
			// Without NoCreate the log is created, and then NoCreate opens it.
			s := testOpen(t, dir, Options{})
			mustCommit(t, s, "x")
			r := testOpen(t, dir, Options{NoCreate: true})
			if ids, _ := readAll(t, r, 1, 10); len(ids) != 1 {
				t.Fatalf("NoCreate on an existing log reads %v", ids)
			}
			if _, err := r.Info(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestInfoCreatesNothing(t *testing.T) {
	// Info reads the MANIFEST and never writes one: a log emptied under an
	// open store is ErrNoLog, one with segments left ErrCorrupt.
	ctx := context.Background()
	dir := t.TempDir()
	s := openRaw(t, dir, Options{NoSync: true})
	for _, name := range []string{manifestName, watermarkName, lockName} {
		os.Remove(filepath.Join(dir, name))
	}
	if _, err := s.Info(ctx); !errors.Is(err, logstore.ErrNoLog) {
		t.Fatalf("Info on an emptied directory: %v, want ErrNoLog", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("Info created %d files", len(entries))
	}
	if _, err := s.LatestUpdateID(ctx); !errors.Is(err, logstore.ErrNoLog) {
		t.Fatalf("LatestUpdateID on an emptied directory: %v, want ErrNoLog", err)
	}
}

func TestReaderRacesWriter(t *testing.T) {
	// A reader that finds less than the watermark acknowledges (it read
	// before the writer's append completed and the watermark after) reads
	// again instead of reporting corruption.
	dir := t.TempDir()
	s := testOpen(t, dir, Options{NoSync: true})
	mustCommit(t, s, "one")
	seg := segPath(t, s)
	whole, _ := os.ReadFile(seg)
	mustCommit(t, s, "two")
	full, _ := os.ReadFile(seg)
	wm, _ := readWatermarkIn(dir)
	// The reader sees the first frame and half of the second ...
	if err := os.WriteFile(seg, full[:len(whole)+10], 0o600); err != nil {
		t.Fatal(err)
	}
	m, _ := s.manifest()
	f, err := os.Open(seg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sc scanner
	loads := 0
	check := m.segCheck(0, ackedEnd{}, func() (ackedEnd, error) {
		// ... and the watermark after the append completed.
		loads++
		if err := os.WriteFile(seg, full, 0o600); err != nil {
			return ackedEnd{}, err
		}
		return wm.forSegment(m, filepath.Base(seg)), nil
	})
	if err := sc.start(f, segPos{}, check); err != nil {
		t.Fatal(err)
	}
	if err := sc.scanToEnd(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if sc.lastID != 2 || sc.end != int64(len(full)) || loads == 0 {
		t.Fatalf("scan ended at id %d, offset %d (of %d), %d watermark reads", sc.lastID, sc.end, len(full), loads)
	}
}

func TestNewLogBesideLeftoverWatermark(t *testing.T) {
	// A directory emptied of its log but for the watermark and the lock
	// file holds no log: a new one is created there, and the old
	// watermark, which names the same first segment, is not taken for
	// the new log's.
	dir := t.TempDir()
	old := openRaw(t, dir, Options{NoSync: true})
	for i := 0; i < 20; i++ {
		mustCommit(t, old, fmt.Sprint("old record ", i))
	}
	old.Close()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != watermarkName && e.Name() != lockName {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	s := testOpen(t, dir, Options{NoSync: true})
	if id := mustCommit(t, s, "new"); id != 1 {
		t.Fatalf("first id of the new log: %d", id)
	}
	r := testOpen(t, dir, Options{})
	if _, got := readAll(t, r, 1, math.MaxUint64); fmt.Sprint(got) != "map[1:new]" {
		t.Fatalf("new log reads %v", got)
	}
}

func TestWatermarkReplacedUnderOpenHandles(t *testing.T) {
	// An operator restores the directory in place (rm and copy), so the
	// WATERMARK file is a new one while handles keep the old one open,
	// and the restored MANIFEST may be the very one they knew (no new
	// epoch). A handle must then read, and its writer write, the file now
	// in the directory: a stale watermark would let a reader take
	// acknowledged bytes for a torn tail and pass damage in them silently,
	// and a writer record its acknowledgements where nobody reads them.
	ctx := context.Background()
	dir := t.TempDir()
	old := openRaw(t, dir, Options{})
	mustCommit(t, old, "one")
	wantCorrupt := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, logstore.ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", what, err)
		}
	}
	if err := old.Check(ctx); err != nil { // opens its watermark reader
		t.Fatal(err)
	}
	replaceWithCopy(t, filepath.Join(dir, watermarkName)) // the restore
	// Another process commits; its acknowledgement is in the new file.
	other := openRaw(t, dir, Options{})
	mustCommit(t, other, "two")
	seg := segPath(t, other)
	frames := readFrames(t, seg)
	flipByte(t, seg, frames[len(frames)-1].start+int64(format2.headerLen())+2)
	wantCorrupt("Check of the handle that had the old file open", old.Check(ctx))
	wantCorrupt("Check of a new handle", openRaw(t, dir, Options{}).Check(ctx))

	// The old handle's writer records its acknowledgement in the new file
	// too: a new handle then takes damage in that commit for corruption.
	dir2 := t.TempDir()
	w := openRaw(t, dir2, Options{})
	mustCommit(t, w, "one")
	replaceWithCopy(t, filepath.Join(dir2, watermarkName))
	mustCommit(t, w, "two")
	seg2 := segPath(t, w)
	frames = readFrames(t, seg2)
	flipByte(t, seg2, frames[len(frames)-1].start+int64(format2.headerLen())+2)
	wantCorrupt("Check of a new handle after the old handle's commit", openRaw(t, dir2, Options{}).Check(ctx))
}

// replaceWithCopy puts a copy of the file at path in its place, as a
// restore by rm and cp does: the same contents in a new file.
func replaceWithCopy(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
