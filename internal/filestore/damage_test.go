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

// fsDirFiles returns every file of dir with its contents.
func fsDirFiles(t *testing.T, dir string) map[string]string {
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

// fsSameFiles fails the test unless dir holds exactly the files of before,
// byte for byte.
func fsSameFiles(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := fsDirFiles(t, dir)
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

// fsFlipByte flips one bit of the byte at off in the file at path.
func fsFlipByte(t *testing.T, path string, off int64) {
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

// fsOpenRaw opens a FileStore that the test closes itself, without the
// Check of fsTestOpen (the log is damaged on purpose).
func fsOpenRaw(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("NewFileStoreOptions: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fsCollect reads every record from 1 on with ReadUpdates and returns them
// with the call's error.
func fsCollect(s *Store) (map[uint64]string, error) {
	got := map[uint64]string{}
	err := s.ReadUpdates(context.Background(), 1, math.MaxUint64, func(id uint64, c []byte) error {
		got[id] = string(c)
		return nil
	})
	return got, err
}

// fsPollCollect polls from the start in pages of max records until More
// is false or an error, and returns the entries and the error.
func fsPollCollect(s *Store, max int) (map[uint64]string, error) {
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

// fsWantCorrupt fails the test unless err wraps logstore.ErrCorrupt and its
// message names every one of words.
func fsWantCorrupt(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	if !errors.Is(err, logstore.ErrCorrupt) {
		t.Fatalf("%s: %v, want ErrCorrupt", what, err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not name %q", what, err, w)
		}
	}
}

// fsDamageLog commits 12 batches of 1 to 3 records to a log whose segments
// hold a few batches each, and returns the records by id.
func fsDamageLog(t *testing.T, dir string) (*Store, map[uint64]string) {
	t.Helper()
	s := fsOpenRaw(t, dir, Options{SegmentSize: 200, NoSync: true})
	want := map[uint64]string{}
	for i := 0; i < 12; i++ {
		n := i%3 + 1
		contents := make([]string, n)
		for j := range contents {
			contents[j] = fmt.Sprintf("batch%d-record%d", i, j)
		}
		last := fsCommit(t, s, contents...)
		for j, c := range contents {
			want[last-uint64(n-1)+uint64(j)] = c
		}
	}
	return s, want
}

// fsBelow returns the records of want with ids below id.
func fsBelow(want map[uint64]string, id uint64) map[uint64]string {
	out := map[uint64]string{}
	for k, v := range want {
		if k < id {
			out[k] = v
		}
	}
	return out
}

// fsSegFrame is a frame of a clean segment, as fsFrames lists it.
type fsSegFrame struct {
	start      int64
	id         uint64
	batchFirst uint64 // the first id of the frame's batch
}

// fsFrames lists the frames of a clean format-2 segment file.
func fsFrames(t *testing.T, path string) []fsSegFrame {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var frames []fsSegFrame
	var first uint64
	for off := fsMagicLen; off < len(data); {
		h, ok := fsParseHeader(data[off:], fsFormat2)
		if !ok {
			t.Fatalf("%s: no frame at offset %d", path, off)
		}
		if first == 0 {
			first = h.id
		}
		frames = append(frames, fsSegFrame{start: int64(off), id: h.id, batchFirst: first})
		if h.last {
			first = 0
		}
		off += int(h.size)
	}
	return frames
}

func TestFileStoreFlippedByteInSealedSegment(t *testing.T) {
	// One flipped bit anywhere in a sealed segment, and bytes added to or
	// cut from its end, are ErrCorrupt for every reader, naming the file
	// and the offset; the records before the damaged batch are delivered,
	// none after.
	hl := int64(fsFormat2.headerLen())
	for _, tc := range []struct {
		name string
		// damage damages the segment and returns the offset the error
		// names and the first id not delivered.
		damage func(t *testing.T, path string, frames []fsSegFrame, size int64, next uint64) (int64, uint64)
	}{
		{"contents of the last frame", func(t *testing.T, path string, fr []fsSegFrame, _ int64, _ uint64) (int64, uint64) {
			f := fr[len(fr)-1]
			fsFlipByte(t, path, f.start+hl+1)
			return f.start, f.batchFirst
		}},
		{"length of the last frame", func(t *testing.T, path string, fr []fsSegFrame, _ int64, _ uint64) (int64, uint64) {
			f := fr[len(fr)-1]
			fsFlipByte(t, path, f.start+1)
			return f.start, f.batchFirst
		}},
		{"nonce of the first frame", func(t *testing.T, path string, fr []fsSegFrame, _ int64, _ uint64) (int64, uint64) {
			fsFlipByte(t, path, fr[0].start+14)
			return fr[0].start, fr[0].batchFirst
		}},
		{"sum of the first frame", func(t *testing.T, path string, fr []fsSegFrame, _ int64, _ uint64) (int64, uint64) {
			fsFlipByte(t, path, fr[1].start-1)
			return fr[0].start, fr[0].batchFirst
		}},
		{"bytes appended", func(t *testing.T, path string, _ []fsSegFrame, size int64, next uint64) (int64, uint64) {
			fsAppendFile(t, path, []byte("trailing"))
			return size, next
		}},
		{"last frame cut off", func(t *testing.T, path string, fr []fsSegFrame, _ int64, _ uint64) (int64, uint64) {
			f := fr[len(fr)-1]
			if err := os.Truncate(path, f.start); err != nil {
				t.Fatal(err)
			}
			return f.start, f.batchFirst
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, want := fsDamageLog(t, dir)
			m, err := w.manifest()
			if err != nil || len(m.Segments) < 4 {
				t.Fatalf("want several segments: %v %v", m.Segments, err)
			}
			sg := m.Segments[1] // sealed
			path := filepath.Join(dir, sg.Name)
			fi, _ := os.Stat(path)
			at, firstLost := tc.damage(t, path, fsFrames(t, path), fi.Size(), m.Segments[2].First)
			wantBefore := fsBelow(want, firstLost)
			offset := fmt.Sprint("offset ", at)

			r := fsOpenRaw(t, dir, Options{})
			got, err := fsCollect(r)
			fsWantCorrupt(t, "ReadUpdates", err, sg.Name, offset)
			if fmt.Sprint(got) != fmt.Sprint(wantBefore) {
				t.Errorf("ReadUpdates delivered %v,\nwant the records before the damage %v", got, wantBefore)
			}
			for _, max := range []int{0, 2} {
				p := fsOpenRaw(t, dir, Options{})
				got, err = fsPollCollect(p, max)
				fsWantCorrupt(t, fmt.Sprint("Poll with Max ", max), err, sg.Name, offset)
				if fmt.Sprint(got) != fmt.Sprint(wantBefore) {
					t.Errorf("Poll with Max %d delivered %v,\nwant %v", max, got, wantBefore)
				}
			}
			fsWantCorrupt(t, "Check", r.Check(context.Background()), sg.Name, offset)
			_, err = r.Compact(context.Background(), math.MaxUint64, 0, func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil })
			fsWantCorrupt(t, "Compact", err, sg.Name)
		})
	}
}

func TestFileStoreFlippedByteInTailAfterCommit(t *testing.T) {
	// A bit flipped in the last frame of the active segment after its
	// Commit returned: readers report ErrCorrupt, a new writer refuses to
	// commit and truncates nothing, and the id is never handed out again.
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		at   func(frame int64) int64
	}{
		{"contents", func(f int64) int64 { return f + int64(fsFormat2.headerLen()) + 2 }},
		{"length", func(f int64) int64 { return f }},
		{"id", func(f int64) int64 { return f + 5 }},
		{"sum", func(f int64) int64 { return f + int64(fsFormat2.headerLen()) + int64(len("acknowledged")) + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := fsOpenRaw(t, dir, Options{})
			fsCommit(t, w, "one")
			fsCommit(t, w, "two", "three")
			last, err := w.Commit(ctx, logstore.LogID{}, fsRecs("acknowledged"))
			if err != nil {
				t.Fatal(err)
			}
			seg := fsSegPath(t, w)
			frames := fsFrames(t, seg)
			frame := frames[len(frames)-1].start
			fsFlipByte(t, seg, tc.at(frame))
			before := fsDirFiles(t, dir)
			offset := fmt.Sprint("offset ", frame)

			r := fsOpenRaw(t, dir, Options{})
			got, err := fsCollect(r)
			fsWantCorrupt(t, "ReadUpdates", err, filepath.Base(seg), offset)
			if fmt.Sprint(got) != "map[1:one 2:two 3:three]" {
				t.Errorf("ReadUpdates delivered %v, want the records before the damage", got)
			}
			_, err = fsPollCollect(r, 0)
			fsWantCorrupt(t, "Poll", err, filepath.Base(seg), offset)
			_, err = r.LatestUpdateID(ctx)
			fsWantCorrupt(t, "LatestUpdateID", err, filepath.Base(seg))
			fsWantCorrupt(t, "Check", r.Check(ctx), filepath.Base(seg), offset)

			nw := fsOpenRaw(t, dir, Options{})
			_, err = nw.Commit(ctx, logstore.LogID{}, fsRecs("must not reuse id 4"))
			fsWantCorrupt(t, "Commit by a new writer", err, filepath.Base(seg), offset)
			fsSameFiles(t, dir, before)

			// Reset is the way out; it hands out no id the damaged log did.
			if err := nw.Reset(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := nw.Commit(ctx, logstore.LogID{}, fsRecs("after reset"))
			if err != nil || c.First <= last.Last {
				t.Fatalf("commit after Reset: %+v, %v; want ids above %d", c, err, last.Last)
			}
		})
	}
}

func TestFileStoreManifestDeleted(t *testing.T) {
	// Segment files without a MANIFEST are lost metadata: ErrCorrupt, and
	// no file is changed, added or removed, whatever the options.
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := fsDamageLog(t, dir)
	if err := os.Remove(filepath.Join(dir, fsManifestName)); err != nil {
		t.Fatal(err)
	}
	before := fsDirFiles(t, dir)
	for _, opts := range []Options{{}, {NoCreate: true}} {
		_, err := Open(dir, opts)
		fsWantCorrupt(t, fmt.Sprintf("NewFileStoreOptions(%+v)", opts), err, "MANIFEST", fsSegmentName(1, 0))
	}
	_, err := s.Info(ctx)
	fsWantCorrupt(t, "Info on an open store", err, "MANIFEST")
	_, err = s.Commit(ctx, logstore.LogID{}, fsRecs("x"))
	fsWantCorrupt(t, "Commit on an open store", err, "MANIFEST")
	_, err = fsPollCollect(s, 0)
	fsWantCorrupt(t, "Poll on an open store", err, "MANIFEST")
	fsSameFiles(t, dir, before)
}

func TestFileStoreOlderManifestBesideNewerSegments(t *testing.T) {
	// A MANIFEST restored from a backup beside segments written after it:
	// ErrCorrupt naming the newer files, which are left untouched, both for
	// a new handle and for one open across the restore.
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := fsDamageLog(t, dir)
	old, err := os.ReadFile(filepath.Join(dir, fsManifestName))
	if err != nil {
		t.Fatal(err)
	}
	m0, _ := s.manifest()
	for i := 0; i < 12; i++ {
		fsCommit(t, s, fmt.Sprint("newer", i), fmt.Sprint("newer", i, "b"))
	}
	m1, _ := s.manifest()
	if len(m1.Segments) <= len(m0.Segments) {
		t.Fatalf("no newer segments: %d, then %d", len(m0.Segments), len(m1.Segments))
	}
	newer := m1.Segments[len(m0.Segments)].Name
	if err := os.WriteFile(filepath.Join(dir, fsManifestName), old, 0o600); err != nil { // cp over it
		t.Fatal(err)
	}
	before := fsDirFiles(t, dir)
	_, err = Open(dir, Options{})
	fsWantCorrupt(t, "Open", err, newer, "MANIFEST")
	_, err = s.Commit(ctx, logstore.LogID{}, fsRecs("x"))
	fsWantCorrupt(t, "Commit on a store open across the restore", err, newer)
	_, err = fsCollect(s)
	fsWantCorrupt(t, "ReadUpdates on a store open across the restore", err, newer)
	fsSameFiles(t, dir, before)
}

func TestFileStoreSegmentMismatch(t *testing.T) {
	// A listed segment missing, and a segment whose frames lie outside the
	// range the MANIFEST gives it, are ErrCorrupt naming the segment.
	ctx := context.Background()
	t.Run("listed segment missing", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := fsDamageLog(t, dir)
		m, _ := s.manifest()
		name := m.Segments[1].Name
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(t.TempDir(), name)); err != nil {
			t.Fatal(err)
		}
		before := fsDirFiles(t, dir)
		_, err := Open(dir, Options{})
		fsWantCorrupt(t, "Open", err, name, "missing")
		_, err = fsCollect(s)
		fsWantCorrupt(t, "ReadUpdates on an open store", err, name)
		_, err = fsPollCollect(s, 0)
		fsWantCorrupt(t, "Poll on an open store", err, name)
		fsWantCorrupt(t, "Check", s.Check(ctx), name)
		fsSameFiles(t, dir, before)
	})
	t.Run("frames outside the listed range", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := fsDamageLog(t, dir)
		m, _ := s.manifest()
		path := filepath.Join(dir, fsManifestName)
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
		r := fsOpenRaw(t, dir, Options{})
		_, err := fsCollect(r)
		fsWantCorrupt(t, "ReadUpdates", err, m.Segments[1].Name, "outside the segment's id range")
		_, err = fsPollCollect(r, 0)
		fsWantCorrupt(t, "Poll", err, m.Segments[1].Name, "outside")
		fsWantCorrupt(t, "Check", r.Check(ctx), m.Segments[1].Name, "outside")
	})
}

func TestFileStorePythonLayoutRefused(t *testing.T) {
	// A directory of Python whycache's file store is refused, naming
	// Python whycache, and nothing is added to it.
	dir := t.TempDir()
	for name, data := range map[string]string{"1.bin": "\x00\x00\x00\x01", "2.bin": "\x00\x00\x00\x01", "latest.repr": "2"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := fsDirFiles(t, dir)
	for _, opts := range []Options{{}, {NoCreate: true}} {
		_, err := Open(dir, opts)
		if err == nil || !strings.Contains(err.Error(), "Python whycache") || !strings.Contains(err.Error(), "latest.repr") {
			t.Errorf("NewFileStoreOptions(%+v) on a Python directory: %v, want a refusal naming Python whycache", opts, err)
		}
	}
	fsSameFiles(t, dir, before)
}

func TestFileStoreNoCreate(t *testing.T) {
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
				before = fsDirFiles(t, dir)
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
				fsSameFiles(t, dir, before)
			}
			// Without NoCreate the log is created, and then NoCreate opens it.
			s := fsTestOpen(t, dir, Options{})
			fsCommit(t, s, "x")
			r := fsTestOpen(t, dir, Options{NoCreate: true})
			if ids, _ := fsRead(t, r, 1, 10); len(ids) != 1 {
				t.Fatalf("NoCreate on an existing log reads %v", ids)
			}
			if _, err := r.Info(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFileStoreInfoCreatesNothing(t *testing.T) {
	// Info reads the MANIFEST and never writes one: a log emptied under an
	// open store is ErrNoLog, one with segments left ErrCorrupt.
	ctx := context.Background()
	dir := t.TempDir()
	s := fsOpenRaw(t, dir, Options{NoSync: true})
	for _, name := range []string{fsManifestName, fsWatermarkName, fsLockName} {
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

func TestFileStoreReaderRacesWriter(t *testing.T) {
	// A reader that finds less than the watermark acknowledges (it read
	// before the writer's append completed and the watermark after) reads
	// again instead of reporting corruption.
	dir := t.TempDir()
	s := fsTestOpen(t, dir, Options{NoSync: true})
	fsCommit(t, s, "one")
	seg := fsSegPath(t, s)
	whole, _ := os.ReadFile(seg)
	fsCommit(t, s, "two")
	full, _ := os.ReadFile(seg)
	wm, _ := fsReadWatermark(dir)
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
	var sc fsScanner
	loads := 0
	check := m.segCheck(0, fsAck{}, func() (fsAck, error) {
		// ... and the watermark after the append completed.
		loads++
		if err := os.WriteFile(seg, full, 0o600); err != nil {
			return fsAck{}, err
		}
		return wm.forSegment(m, filepath.Base(seg)), nil
	})
	if err := sc.start(f, fsPos{}, check); err != nil {
		t.Fatal(err)
	}
	if err := sc.scanToEnd(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if sc.lastID != 2 || sc.end != int64(len(full)) || loads == 0 {
		t.Fatalf("scan ended at id %d, offset %d (of %d), %d watermark reads", sc.lastID, sc.end, len(full), loads)
	}
}

func TestFileStoreNewLogBesideLeftoverWatermark(t *testing.T) {
	// A directory emptied of its log but for the watermark and the lock
	// file holds no log: a new one is created there, and the old
	// watermark, which names the same first segment, is not taken for
	// the new log's.
	dir := t.TempDir()
	old := fsOpenRaw(t, dir, Options{NoSync: true})
	for i := 0; i < 20; i++ {
		fsCommit(t, old, fmt.Sprint("old record ", i))
	}
	old.Close()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != fsWatermarkName && e.Name() != fsLockName {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	s := fsTestOpen(t, dir, Options{NoSync: true})
	if id := fsCommit(t, s, "new"); id != 1 {
		t.Fatalf("first id of the new log: %d", id)
	}
	r := fsTestOpen(t, dir, Options{})
	if _, got := fsRead(t, r, 1, math.MaxUint64); fmt.Sprint(got) != "map[1:new]" {
		t.Fatalf("new log reads %v", got)
	}
}
