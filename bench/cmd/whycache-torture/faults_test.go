package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

func TestCheckAcks(t *testing.T) {
	h := &logHistory{latest: 9, writes: map[string][]keyWrite{
		"a": {{id: 2, hash: valueHash([]byte("1"))}, {id: 5, del: true}},
		"b": {{id: 3, hash: valueHash([]byte("2"))}},
		"c": {{id: 7, hash: valueHash(nil)}},
	}}
	tests := []struct {
		name string
		ack  faultAck
		lost string // "" when the log holds it
	}{
		{"the record holds the set", faultAck{ID: 3, Key: "b", Hash: valueHash([]byte("2"))}, ""},
		{"the record holds the delete", faultAck{ID: 5, Key: "a", Del: true}, ""},
		{"an empty value is a value", faultAck{ID: 7, Key: "c", Hash: valueHash(nil)}, ""},
		{"replaced by a later write", faultAck{ID: 1, Key: "a", Hash: 42}, ""},
		{"no write of the key", faultAck{ID: 4, Key: "z", Hash: 1}, "no write of the key"},
		{"no write at or after it", faultAck{ID: 8, Key: "b", Hash: valueHash([]byte("2"))}, "no write of the key"},
		{"another value at its record", faultAck{ID: 3, Key: "b", Hash: valueHash([]byte("3"))}, "another write"},
		{"a set where the log deletes", faultAck{ID: 5, Key: "a", Hash: valueHash([]byte("1"))}, "another write"},
		{"a delete where the log sets", faultAck{ID: 7, Key: "c", Del: true}, "another write"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.checkAcks([]faultAck{tc.ack})
			if tc.lost == "" {
				if err != nil {
					t.Errorf("checkAcks: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, errLost) || !strings.Contains(err.Error(), tc.lost) {
				t.Errorf("checkAcks: %v, want errLost saying %q", err, tc.lost)
			}
		})
	}
}

// TestReadHistory replays a real log: a record's last item for a key is
// the write kept, and acknowledgements check against it.
func TestReadHistory(t *testing.T) {
	ctx := context.Background()
	store, err := whycache.NewFileStore(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	commit := func(items ...logstore.Item) uint64 {
		t.Helper()
		rec, err := logstore.AppendRecord(nil, items)
		if err != nil {
			t.Fatal(err)
		}
		c, err := store.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: rec}})
		if err != nil {
			t.Fatal(err)
		}
		return c.Last
	}
	first := commit(logstore.Item{Key: []byte("k"), Value: []byte("old")}, logstore.Item{Key: []byte("k"), Value: []byte("new")})
	second := commit(logstore.Item{Key: []byte("gone"), Value: []byte("x")}, logstore.Item{Key: []byte("gone"), Delete: true})
	h, err := readHistory(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if h.latest != second || len(h.model) != 1 || string(h.model["k"]) != "new" {
		t.Fatalf("history at %d, model %q", h.latest, h.model)
	}
	if err := h.checkAcks([]faultAck{{ID: first, Key: "k", Hash: valueHash([]byte("new"))}, {ID: second, Key: "gone", Del: true}}); err != nil {
		t.Errorf("the last writes of each record: %v", err)
	}
	if err := h.checkAcks([]faultAck{{ID: first, Key: "k", Hash: valueHash([]byte("old"))}}); !errors.Is(err, errLost) {
		t.Errorf("a write the same record overwrote: %v, want errLost", err)
	}
	if model, err := replayTo(ctx, store, first); err != nil || len(model) != 1 {
		t.Errorf("replayTo(%d) = %q, %v", first, model, err)
	}
}

func TestNoKeyMovedBack(t *testing.T) {
	r := &faultRun{vanished: map[string]uint64{}}
	before := map[string]uint64{"a": 5, "b": 7, "c": 9}
	if err := r.noKeyMovedBack("test", before, map[string]uint64{"a": 5, "b": 8}); err != nil {
		t.Fatalf("same and newer records: %v", err)
	}
	if r.vanished["c"] != 9 {
		t.Errorf("a key gone is not remembered for the log check: %v", r.vanished)
	}
	err := r.noKeyMovedBack("test", before, map[string]uint64{"a": 4, "b": 7, "c": 9})
	if !errors.Is(err, errLost) || !strings.Contains(err.Error(), `"a" moved back from record 5 to record 4`) {
		t.Errorf("a key at an older record: %v, want errLost naming it", err)
	}
}

func TestSegmentFrameID(t *testing.T) {
	seg := []byte(segMagic2)
	frame := func(id uint64, contents string) {
		hdr := make([]byte, segHeaderLen)
		binary.LittleEndian.PutUint32(hdr, uint32(len(contents)))
		binary.LittleEndian.PutUint64(hdr[4:], id)
		seg = append(append(append(seg, hdr...), contents...), make([]byte, segTrailerLen)...)
	}
	frame(7, "abc")
	frame(8, "")
	frame(9, "defgh")
	end1 := int64(len(segMagic2) + segHeaderLen + 3 + segTrailerLen)
	end2 := end1 + segHeaderLen + segTrailerLen
	for _, tc := range []struct {
		off  int64
		want uint64
	}{
		{0, 7}, {7, 7}, {8, 7}, {end1 - 1, 7}, {end1, 8}, {end2 - 1, 8}, {end2, 9}, {int64(len(seg)) - 1, 9}, {int64(len(seg)), 0},
	} {
		if got := segmentFrameID(seg, tc.off); got != tc.want {
			t.Errorf("byte %d: record %d, want %d", tc.off, got, tc.want)
		}
	}
	if got := segmentFrameID([]byte("WHYCSEG1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), 9); got != 0 {
		t.Errorf("format-1 segment: %d, want 0 (unknown)", got)
	}
}

func TestSameFiles(t *testing.T) {
	a := map[string][32]byte{"MANIFEST": {1}, "1.seg": {2}}
	if d := sameFiles(a, map[string][32]byte{"MANIFEST": {1}, "1.seg": {2}}); d != "" {
		t.Errorf("same files: %q", d)
	}
	d := sameFiles(a, map[string][32]byte{"1.seg": {3}, "MANIFEST.tmp": {1}})
	if d != "1.seg changed, MANIFEST is gone, MANIFEST.tmp appeared" {
		t.Errorf("differences: %q", d)
	}
}

func TestErrKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", whycache.ErrWriterStuck), "writer-stuck"},
		{fmt.Errorf("%w: %w", whycache.ErrRebuildNeeded, whycache.ErrLogMismatch), "log-mismatch"},
		{fmt.Errorf("%w: %w", whycache.ErrRebuildNeeded, whycache.ErrLogDiverged), "log-diverged"},
		{fmt.Errorf("f: %w", logstore.ErrCorrupt), "corrupt"},
		{fmt.Errorf("f: %w", context.DeadlineExceeded), "deadline"},
		{errors.New("something"), "other"},
	} {
		if got := errKind(tc.err); got != tc.want {
			t.Errorf("errKind(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestDigests(t *testing.T) {
	model := map[string][]byte{"b": {}, "a": []byte("1"), "ab": []byte("2")}
	keys, sum := modelDigest(model)
	order := []string{"a", "ab", "b"}
	k2, s2 := stateDigest(func(yield func([]byte, []byte) bool) {
		for _, k := range order {
			if !yield([]byte(k), model[k]) {
				return
			}
		}
	})
	if keys != 3 || k2 != keys || s2 != sum {
		t.Errorf("model digest %d %x, state digest %d %x", keys, sum, k2, s2)
	}
	model["b"] = nil // still an empty value
	if _, s := modelDigest(model); s != sum {
		t.Error("nil and empty values digest differently")
	}
	model["b"] = []byte("x")
	if _, s := modelDigest(model); s == sum {
		t.Error("a changed value gives the same digest")
	}
}

// TestSegmentFrameIDOnRealSegment reads a segment the file store wrote:
// the parser must find its first and last records (the layout it assumes
// is the store's).
func TestSegmentFrameIDOnRealSegment(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/log"
	store, err := whycache.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var last uint64
	for i := range 5 {
		rec, err := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte("k"), Value: []byte(strings.Repeat("v", i))}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := store.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: rec}, {Contents: rec}})
		if err != nil {
			t.Fatal(err)
		}
		last = c.Last
	}
	segs, err := filepath.Glob(dir + "/*.seg")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := segmentFrameID(data, 0); got != 1 {
		t.Errorf("the magic: record %d, want 1", got)
	}
	if got := segmentFrameID(data, int64(len(data))-1); got != last {
		t.Errorf("the last byte: record %d, want %d", got, last)
	}
}

// newTestFaultRun returns a faults run on a new file store log with one
// machine and no writer processes.
func newTestFaultRun(t *testing.T) (*faultRun, *faultMachine) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	r := &faultRun{
		t:   &torture{cfg: config{keys: 1000}, rng: newRand(1)},
		ctx: ctx, log: logRef{dir: filepath.Join(dir, "log"), segment: faultSegmentSize}, work: dir,
		faults: map[string]int{}, restores: map[string]int{}, flips: map[string]int{}, errs: map[string]map[string]int{}, vanished: map[string]uint64{},
	}
	t.Cleanup(r.close)
	states, err := newStates(ctx, dir, r.log, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &faultMachine{name: "machine1", state: states[0]}
	if m.store, m.closeStore, err = r.log.openExisting(); err != nil {
		t.Fatal(err)
	}
	r.machines = append(r.machines, m)
	if m.inst, err = whycache.Open(m.store, whycache.Options{StatePath: m.state}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		id, err := m.inst.Set(ctx, fmt.Appendf(nil, "k%05d", i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		r.pending = append(r.pending, faultAck{ID: id, Key: fmt.Sprintf("k%05d", i), Hash: valueHash([]byte("v"))})
	}
	return r, m
}

// TestConvergeCatchesDivergence: converge passes on a machine that holds
// the log, and fails with errLost on a state holding a key the log does
// not give, a vanished key without a later write, and an acknowledged
// write the log does not hold.
func TestConvergeCatchesDivergence(t *testing.T) {
	t.Run("agreeing", func(t *testing.T) {
		r, _ := newTestFaultRun(t)
		if err := r.converge(); err != nil {
			t.Fatal(err)
		}
		if r.acked != 20 || r.checks != 1 || r.keys != 20 {
			t.Errorf("acked %d, checks %d, keys %d; want 20, 1, 20", r.acked, r.checks, r.keys)
		}
	})
	t.Run("a key the log does not give", func(t *testing.T) {
		r, m := newTestFaultRun(t)
		tree, err := prefixtree.Open(m.state, prefixtree.Options{NoCreate: true})
		if err != nil {
			t.Fatal(err)
		}
		b, err := tree.Begin()
		if err == nil {
			_, err = b.Put([]byte("k00001"), []byte("never committed"), 15) // within the position: Check cannot tell
		}
		if err == nil {
			err = b.Commit()
		}
		tree.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.converge(); !errors.Is(err, errLost) || !strings.Contains(err.Error(), `"k00001" is 15 bytes`) {
			t.Errorf("converge: %v, want errLost naming k00001", err)
		}
	})
	t.Run("a vanished key", func(t *testing.T) {
		r, _ := newTestFaultRun(t)
		r.vanished["k00003"] = 1 << 30
		if err := r.converge(); !errors.Is(err, errLost) || !strings.Contains(err.Error(), "k00003") {
			t.Errorf("converge: %v, want errLost naming k00003", err)
		}
	})
	t.Run("a lost acknowledged write", func(t *testing.T) {
		r, _ := newTestFaultRun(t)
		r.pending = append(r.pending, faultAck{ID: 21, Key: "k00099", Hash: 1})
		if err := r.converge(); !errors.Is(err, errLost) || !strings.Contains(err.Error(), "k00099") {
			t.Errorf("converge: %v, want errLost naming k00099", err)
		}
	})
}
