package storetest

import (
	"bytes"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// singleKeyStep is one Commit of testSingleKey.
type singleKeyStep struct {
	batch []logstore.Record
	// superseded[i] says batch[i] is dropped by a later record (when the
	// store replaces single keys).
	superseded []bool
}

// supersededInCommit reports whether a later record of the step's batch
// has batch[i]'s single key.
func (st singleKeyStep) supersededInCommit(i int) bool {
	for _, r := range st.batch[i+1:] {
		if st.batch[i].SingleKey != nil && bytes.Equal(r.SingleKey, st.batch[i].SingleKey) {
			return true
		}
	}
	return false
}

// testSingleKey checks Record.SingleKey handling. With
// Harness.SingleKeyReplaces, a single-key record drops the older single-key
// record for its key, also within one batch; multi-key records (SingleKey
// nil) and records whose SingleKey is above MaxSingleKeySize are never
// dropped. Without it, every record stays.
func testSingleKey(t *testing.T, h Harness) {
	f := newFixture(t, h)
	long := bytes.Repeat([]byte("L"), f.s.Limits().MaxSingleKeySize+1)
	testLong := len(long) <= 64<<10
	single := func(tag string, key []byte) logstore.Record {
		return logstore.Record{Contents: contents(t, tag), SingleKey: key}
	}
	steps := []singleKeyStep{
		{[]logstore.Record{single("a1", []byte("a"))}, []bool{true}},
		{[]logstore.Record{{Contents: contents(t, "multi a b")}}, []bool{false}},
		{[]logstore.Record{single("b1", []byte("b"))}, []bool{false}},
		{[]logstore.Record{single("a2", []byte("a"))}, []bool{true}},
		{[]logstore.Record{single("a3", []byte("a"))}, []bool{false}},
		{[]logstore.Record{single("c1", []byte("c")), single("c2", []byte("c"))}, []bool{true, false}},
		{[]logstore.Record{single("ab", []byte("ab")), single("A", []byte("A"))}, []bool{false, false}},
	}
	if testLong {
		steps = append(steps, singleKeyStep{
			[]logstore.Record{single("long1", long), single("long2", long)}, []bool{false, false}})
	}
	var everything, kept []stored
	var last uint64
	for _, st := range steps {
		got := commit(t, f.s, last, st.batch...)
		last = got[len(got)-1].id
		everything = append(everything, got...)
		for i, r := range got {
			if !st.superseded[i] || (h.SingleKeyAcrossCommits && st.supersededInCommit(i)) {
				kept = append(kept, r)
			}
		}
	}
	want := everything
	if h.SingleKeyReplaces {
		want = kept
	}
	expectRecords(t, "log after single-key commits", readAll(t, f.s, 0, all), want)
	expectRecords(t, "log after single-key commits (other handle)", readAll(t, f.handle(t), 0, all), want)
	if got := latest(t, f.s); got != last {
		t.Errorf("LatestUpdateID = %d, want %d (dropped records keep their ids)", got, last)
	}
}
