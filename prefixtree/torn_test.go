package prefixtree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// Test values are self-checking, so that a reader can tell a torn or
// foreign value from one a writer wrote:
//
//	u64 version | payload | u64 xxhash64(key ‖ version ‖ payload)
//
// The payload is a slice of valuePool chosen by (key, version), so a reader
// can also regenerate it: a value that passes is exactly the one written
// for that key and version.

// valuePool is the deterministic byte source of every payload.
var valuePool = func() []byte {
	r := rand.New(rand.NewPCG(0x5eed, 0x9001))
	b := make([]byte, 2<<20)
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}()

// maxPayload is the largest payload makeValue supports.
const maxPayload = 1 << 20

func payloadFor(key string, version uint64, size int) []byte {
	h := xxhash.Sum64String(key) ^ version*0x9e3779b97f4a7c15
	off := h % uint64(len(valuePool)-size+1)
	return valuePool[off : off+uint64(size)]
}

func valueSum(key string, body []byte) uint64 {
	d := xxhash.New()
	d.WriteString(key)
	d.Write(body)
	return d.Sum64()
}

// makeValue returns the value of key at version with a payload of size
// bytes (at most maxPayload).
func makeValue(key string, version uint64, size int) []byte {
	v := make([]byte, 8+size+8)
	binary.LittleEndian.PutUint64(v, version)
	copy(v[8:], payloadFor(key, version, size))
	binary.LittleEndian.PutUint64(v[8+size:], valueSum(key, v[:8+size]))
	return v
}

// errBadValue marks a value that no writer wrote for its key.
var errBadValue = errors.New("torn or foreign value")

// checkValue verifies that v is a value makeValue returns for key, and
// returns its version.
func checkValue(key string, v []byte) (uint64, error) {
	if len(v) < 16 || len(v)-16 > maxPayload {
		return 0, fmt.Errorf("%w: key %q: %d bytes", errBadValue, key, len(v))
	}
	body := v[:len(v)-8]
	if valueSum(key, body) != binary.LittleEndian.Uint64(v[len(v)-8:]) {
		return 0, fmt.Errorf("%w: key %q: checksum mismatch (%d bytes)", errBadValue, key, len(v))
	}
	version := binary.LittleEndian.Uint64(v)
	if !bytes.Equal(body[8:], payloadFor(key, version, len(body)-8)) {
		return 0, fmt.Errorf("%w: key %q: payload is not that of version %d", errBadValue, key, version)
	}
	return version, nil
}

// readerStats counts what a verifying reader did.
type readerStats struct {
	Gets      int // point reads
	Hits      int // point reads that found a value (all verified)
	Scans     int // full iterations
	ScanSteps int // keys returned by iterations (all verified)
	States    int // distinct commit counts seen: more than one means reads overlapped writes
}

// verifyReader reads tr until stop is closed: random point reads of keys
// and full iterations, verifying every value, that iteration is strictly
// ascending and returns only known keys. ready, if not nil, is called once
// after the first round.
func verifyReader(tr *Tree, keys []string, seed uint64, stop <-chan struct{}, ready func()) (readerStats, error) {
	known := make(map[string]bool, len(keys))
	for _, k := range keys {
		known[k] = true
	}
	r := rand.New(rand.NewPCG(seed, 1))
	var st readerStats
	commits := map[uint64]bool{}
	var buf, prev []byte
	for round := 0; ; round++ {
		if round == 1 && ready != nil {
			ready()
		}
		select {
		case <-stop:
			st.States = len(commits)
			return st, nil
		default:
		}
		commits[tr.File().Stats().Commits] = true
		for i := 0; i < 32; i++ {
			k := keys[r.IntN(len(keys))]
			v, found, err := tr.AppendGet(buf[:0], []byte(k))
			if err != nil {
				return st, fmt.Errorf("Get(%q): %w", k, err)
			}
			st.Gets++
			if found {
				st.Hits++
				if _, err := checkValue(k, v); err != nil {
					return st, err
				}
			}
			buf = v
		}
		c := tr.Cursor()
		n := 0
		for c.Next() {
			k := c.Key()
			if n > 0 && bytes.Compare(prev, k) >= 0 {
				return st, fmt.Errorf("iteration went from %q to %q", prev, k)
			}
			if !known[string(k)] {
				return st, fmt.Errorf("iteration returned foreign key %q", k)
			}
			if _, err := checkValue(string(k), c.Value()); err != nil {
				return st, fmt.Errorf("iteration: %w", err)
			}
			prev = append(prev[:0], k...)
			if n++; n > len(keys) {
				return st, fmt.Errorf("iteration returned more than the %d keys that exist", len(keys))
			}
		}
		if err := c.Err(); err != nil {
			return st, fmt.Errorf("iteration: %w", err)
		}
		st.Scans++
		st.ScanSteps += n
	}
}

// TestValueFormat checks that checkValue accepts what makeValue returns
// and rejects values of other keys or versions and torn mixtures.
func TestValueFormat(t *testing.T) {
	a := makeValue("key", 7, 300)
	b := makeValue("key", 8, 300)
	torn := append(append([]byte{}, a[:150]...), b[150:]...)
	wrongVersion := append([]byte{}, a...)
	binary.LittleEndian.PutUint64(wrongVersion, 8)
	for _, tc := range []struct {
		name    string
		key     string
		value   []byte
		version uint64 // 0: must be rejected
	}{
		{"own", "key", a, 7},
		{"empty payload", "key", makeValue("key", 1, 0), 1},
		{"other key", "kez", a, 0},
		{"torn", "key", torn, 0},
		{"version changed", "key", wrongVersion, 0},
		{"short", "key", a[:15], 0},
		{"truncated", "key", a[:len(a)-1], 0},
	} {
		version, err := checkValue(tc.key, tc.value)
		if tc.version != 0 && (err != nil || version != tc.version) {
			t.Errorf("%s: version %d, %v; want %d", tc.name, version, err, tc.version)
		}
		if tc.version == 0 && !errors.Is(err, errBadValue) {
			t.Errorf("%s: err = %v, want errBadValue", tc.name, err)
		}
	}
}

// TestTornReads churns values of varying sizes (so blocks are freed and
// reused under the readers) from two writer goroutines with their own
// handles and a writer process, while two reader goroutines and a reader
// process verify every value and every iteration step.
func TestTornReads(t *testing.T) {
	batches := uint64(400)
	if torture() {
		batches = 5000
	}
	var work []workload
	for w := 0; w < 3; w++ {
		work = append(work, workload{Seed: 21, Writer: w, Keys: 48, MaxOps: 8, MaxValue: 3000, DeletePct: 15, PurgePct: 5})
	}
	stats := runScenario(t, scenario{Work: work, GoWriters: 2, Batches: batches, GoReaders: 2, ProcReaders: 1})
	var total readerStats
	for i, st := range stats {
		t.Logf("reader %d: %+v", i, st)
		total.Gets += st.Gets
		total.Hits += st.Hits
		total.ScanSteps += st.ScanSteps
		total.Scans += st.Scans
	}
	t.Logf("verified %d point reads (%d hits) and %d iteration steps in %d scans: no torn or foreign value",
		total.Gets, total.Hits, total.ScanSteps, total.Scans)
	if total.Hits == 0 || total.ScanSteps == 0 {
		t.Fatalf("readers verified nothing: %+v", total)
	}
}
