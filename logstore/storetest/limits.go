package storetest

import (
	"errors"
	"testing"

	"github.com/whycache/whycache/logstore"
)

const (
	// bigRecord is the size of a large record every store must hold.
	bigRecord = 1 << 20
	// maxTestedLimit is the largest MaxRecordSize the suite tests exactly;
	// above it the over-limit checks are skipped (too much memory).
	maxTestedLimit = 32 << 20
)

// sized returns a valid encoded record of exactly n bytes (n >= 26), its
// value filled with a pattern seeded by tag.
func sized(t *testing.T, tag byte, n int) []byte {
	t.Helper()
	vlen := n - logstore.RecordOverhead - logstore.ItemSize(1, 0, false)
	if vlen < 0 {
		t.Fatalf("no record of %d bytes", n)
	}
	value := make([]byte, vlen)
	for i := range value {
		value[i] = tag + byte(i%251)
	}
	b, err := logstore.AppendRecord(make([]byte, 0, n), []logstore.Item{{Key: []byte{tag}, Value: value}})
	if err != nil || len(b) != n {
		t.Fatalf("sized record: %d bytes, %v; want %d", len(b), err, n)
	}
	return b
}

// testLimits checks the advertised limits: a large record fits, one byte
// over MaxRecordSize fails with ErrTooLarge and commits nothing, even when
// other records of the batch fit.
func testLimits(t *testing.T, h Harness) {
	f := newFixture(t, h)
	lim := f.s.Limits()
	if lim.MaxRecordSize <= 0 || lim.MaxSingleKeySize <= 0 {
		t.Fatalf("Limits = %+v, want positive sizes", lim)
	}
	want := commit(t, f.s, 0, logstore.Record{Contents: sized(t, 'a', min(bigRecord, lim.MaxRecordSize))})
	if lim.MaxRecordSize > maxTestedLimit {
		t.Logf("MaxRecordSize %d above %d: over-limit commits not tested", lim.MaxRecordSize, maxTestedLimit)
		expectRecords(t, "large record", readAll(t, f.s, 0, all), want)
		return
	}
	if lim.MaxRecordSize > bigRecord {
		want = append(want, commit(t, f.s, want[0].id, logstore.Record{Contents: sized(t, 'b', lim.MaxRecordSize)})...)
	}
	before := latest(t, f.s)
	tooBig := logstore.Record{Contents: sized(t, 'c', lim.MaxRecordSize+1)}
	small := logstore.Record{Contents: contents(t, "small")}
	for _, batch := range [][]logstore.Record{{tooBig}, {small, tooBig}, {tooBig, small}} {
		id, err := f.s.Commit(f.ctx, logstore.LogID{}, batch)
		if !errors.Is(err, logstore.ErrTooLarge) {
			t.Errorf("Commit of a %d-record batch with a record over MaxRecordSize %d = %d, %v; want ErrTooLarge",
				len(batch), lim.MaxRecordSize, id, err)
		}
	}
	if got := latest(t, f.s); got != before {
		t.Errorf("LatestUpdateID = %d after rejected commits, want %d", got, before)
	}
	expectRecords(t, "records at the limit, after rejected commits", readAll(t, f.s, 0, all), want)
}
