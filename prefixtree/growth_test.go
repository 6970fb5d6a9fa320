package prefixtree

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/whycache/whycache/shm"
)

// The growth test: a reader process maps the file while it is one page and
// keeps reading while the parent grows it past growthTarget with large
// values. The reader must never fail and must read the newest large value,
// at the far end of the file, through its one mapping.

const (
	growthKnown    = 64 // small keys written first
	growthMinValue = 256 << 10
	growthMaxValue = 1 << 20
)

// growthTarget is the size the file grows to: 1 GiB (256 MiB with -short).
func growthTarget() uint64 {
	if testing.Short() {
		return 256 << 20
	}
	return 1 << 30
}

func growthKnownKey(i int) string  { return fmt.Sprintf("known/%02d", i) }
func growthBigKey(i uint64) string { return fmt.Sprintf("big/%06d", i) }

// growthStats is what the reader process reports.
type growthStats struct {
	Reads     int    // Gets, all successful and verified
	BigReads  int    // Gets of the newest large value
	FirstSize uint64 // File().Size() when the reader started
	LastSize  uint64 // File().Size() when it stopped
	Sizes     int    // distinct sizes seen
}

// runGrowReaderRole reads the known keys and the newest large value (meta
// word 0 counts the large values) until stopped. A known key, once found,
// must stay; every value must verify.
func runGrowReaderRole(tr *Tree, a helperArgs, stop <-chan struct{}) error {
	st := growthStats{FirstSize: tr.File().Size()}
	sizes := map[uint64]bool{}
	seen := make([]bool, growthKnown)
	say("ready")
	var buf []byte
	for {
		select {
		case <-stop:
			st.LastSize, st.Sizes = tr.File().Size(), len(sizes)
			raw, _ := json.Marshal(st)
			say("stats %s", raw)
			return nil
		default:
		}
		sizes[tr.File().Size()] = true
		for i := range seen {
			k := growthKnownKey(i)
			v, found, err := tr.AppendGet(buf[:0], []byte(k))
			if err != nil {
				return fmt.Errorf("Get(%q) at size %d: %w", k, tr.File().Size(), err)
			}
			st.Reads++
			if !found && seen[i] {
				return fmt.Errorf("known key %q vanished", k)
			}
			if found {
				if _, err := checkValue(k, v); err != nil {
					return err
				}
			}
			seen[i], buf = found, v
		}
		// Meta may be ahead of the committed state during a batch; the
		// Get waits for the batch, which always commits here.
		if n := tr.Meta(0); n > 0 {
			k := growthBigKey(n - 1)
			v, found, err := tr.AppendGet(buf[:0], []byte(k))
			if err != nil || !found {
				return fmt.Errorf("Get(%q) at size %d: found=%v, %v", k, tr.File().Size(), found, err)
			}
			if _, err := checkValue(k, v); err != nil {
				return err
			}
			st.Reads++
			st.BigReads++
			buf = v
		}
	}
}

// TestGrowthUnderReaderProcess grows a file from one page past
// growthTarget while a reader process reads.
func TestGrowthUnderReaderProcess(t *testing.T) {
	target := growthTarget()
	path := filepath.Join(t.TempDir(), "state")
	tr, err := Open(path, Options{MaxSize: 4 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if size := tr.File().Size(); size != shm.PageSize {
		t.Fatalf("new file has %d bytes, want one page", size)
	}
	reader := startChild(t, helperArgs{Role: "growreader", Path: path})
	if _, err := reader.expect("ready"); err != nil {
		t.Fatal(err)
	}

	b, err := tr.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < growthKnown; i++ {
		k := growthKnownKey(i)
		v := makeValue(k, 1, 10+i*13)
		if _, err := b.Put([]byte(k), v, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(41, 41))
	var big uint64
	for tr.File().Size() < target {
		b, err := tr.Begin()
		if err != nil {
			t.Fatal(err)
		}
		k := growthBigKey(big)
		v := makeValue(k, big+1, growthMinValue+r.IntN(growthMaxValue-growthMinValue+1))
		if _, err := b.Put([]byte(k), v, big+1); err != nil {
			t.Fatal(err)
		}
		big++
		if err := b.SetMeta(0, big); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := reader.finish()
	if err != nil {
		t.Fatal(err)
	}
	var st growthStats
	if err := parseJSONLine(lines, "stats ", &st); err != nil {
		t.Fatal(err)
	}
	fileSize, err := tr.File().FileSize()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grew to %d bytes (%d on disk) with %d values; reader: %+v", tr.File().Size(), fileSize, big, st)
	if st.FirstSize != shm.PageSize || st.LastSize < target || st.Sizes < 2 || st.BigReads == 0 {
		t.Fatalf("the reader did not follow the growth from one page: %+v", st)
	}
	verifyGrown(t, tr, big)
}

// verifyGrown checks that tr holds exactly the known keys and big large
// values, each the version written.
func verifyGrown(t *testing.T, tr *Tree, big uint64) {
	t.Helper()
	if got, want := tr.Len(), growthKnown+big; got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
	n := uint64(0)
	for k, v := range tr.All(nil) {
		want := uint64(1)
		var i uint64
		if _, err := fmt.Sscanf(string(k), "big/%06d", &i); err == nil {
			want = i + 1
		}
		if version, err := checkValue(string(k), v); err != nil || version != want {
			t.Fatalf("%q: version %d, %v; want version %d", k, version, err, want)
		}
		n++
	}
	if n != growthKnown+big {
		t.Fatalf("iteration returned %d keys, want %d", n, growthKnown+big)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
}
