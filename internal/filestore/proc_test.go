package filestore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/flock"
	"github.com/whycache/whycache/internal/testproc"
	"github.com/whycache/whycache/logstore"
	"golang.org/x/sys/unix"
)

// helperArgs configure a helper process of the tests below (the test
// binary run again, see testproc).
type helperArgs struct {
	Mode string // writer, crash, fsize or hold
	Dir  string // the store directory
	Tag  string // prefix of the records written
	N    int    // commits to make (writer)
}

// helperOptions are the options every helper process and its parent use.
var helperOptions = Options{SegmentSize: 64 << 10}

// batchContents is the contents of record j of batch i of a helper. With
// big, every fourth batch has large records, so that a kill can land in the
// middle of its write.
func batchContents(tag string, i, j int, big bool) string {
	c := fmt.Sprintf("%s/%d/%d", tag, i, j)
	if big && i%4 == 3 {
		c += strings.Repeat("*", 128<<10)
	}
	return c
}

// TestHelperProcess is the body of the helper processes; it does
// nothing in a normal run. It prints "batch <last id> <records> <index>"
// on stdout after each Commit returns.
func TestHelperProcess(t *testing.T) {
	var a helperArgs
	if err := json.Unmarshal([]byte(testproc.Arg(t)), &a); err != nil {
		t.Fatal(err)
	}
	mode := a.Mode
	ctx := context.Background()
	opts := helperOptions
	// A process crash loses nothing written, synced or not; without syncs
	// a kill lands in the middle of a write more often.
	opts.NoSync = mode == "crash"
	s, err := Open(a.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	tag := a.Tag
	switch mode {
	case "writer", "crash":
		for i := 0; mode == "crash" || i < a.N; i++ {
			k := i%3 + 1
			contents := make([]string, k)
			for j := range contents {
				contents[j] = batchContents(tag, i, j, mode == "crash")
			}
			id, err := commitLast(ctx, s, makeRecs(contents...))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(out, "batch %d %d %d\n", id, k, i)
			if mode == "crash" {
				out.Flush()
			}
		}
	case "fsize":
		helperFileSizeLimit(t, s, out)
	case "hold":
		helperHoldLock(t, s, out)
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

// helperFileSizeLimit commits a record that cannot fit under
// RLIMIT_FSIZE and reports the error and whether the segment changed.
func helperFileSizeLimit(t *testing.T, s *Store, out io.Writer) {
	ctx := context.Background()
	mustCommit(t, s, "before")
	seg := s.path(segmentName(1, 0))
	before, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lim := uint64(len(before) + 100)
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
		t.Fatal(err)
	}
	_, err = commitLast(ctx, s, makeRecs("small", strings.Repeat("x", 1000)))
	after, rerr := os.ReadFile(seg)
	if rerr != nil {
		t.Fatal(rerr)
	}
	fmt.Fprintf(out, "commit-error %v\n", err != nil)
	fmt.Fprintf(out, "error %v\n", err)
	fmt.Fprintf(out, "unchanged %v\n", string(after) == string(before))
	id, err := commitLast(ctx, s, makeRecs("fits"))
	fmt.Fprintf(out, "next %d %v\n", id, err)
}

// helperHoldLock takes the writer lock of the store through a file of
// its own, reports "locked" and holds it until the process is killed (or
// its stdin closes).
func helperHoldLock(t *testing.T, s *Store, out *bufio.Writer) {
	f, err := os.OpenFile(s.path(lockName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock.Lock(context.Background(), int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(out, "locked")
	out.Flush()
	io.Copy(io.Discard, os.Stdin)
}

func TestLockWaitHonoursContext(t *testing.T) {
	// While another process holds the writer lock, a Commit, Compact or
	// Reset whose context is cancelled returns the context's error within
	// 100 ms and changes nothing.
	ctx := context.Background()
	dir := t.TempDir()
	s := testOpen(t, dir, Options{NoSync: true})
	mustCommit(t, s, "before")
	info, _ := s.Info(ctx)
	h := startHelper(t, helperArgs{Mode: "hold", Dir: dir})
	if _, line, ok := h.Await(0, nil); line != "locked" {
		t.Fatalf("helper: %q (output ended: %v)", line, !ok)
	}
	keep := func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil }
	for name, op := range map[string]func(context.Context) error{
		"Commit": func(ctx context.Context) error {
			_, err := s.Commit(ctx, logstore.LogID{}, makeRecs("never"))
			return err
		},
		"Compact": func(ctx context.Context) error { _, err := s.Compact(ctx, 1, 1, keep); return err },
		"Reset":   func(ctx context.Context) error { return s.Reset(ctx) },
	} {
		opCtx, cancel := context.WithCancel(ctx)
		cancelled := make(chan time.Time, 1)
		timer := time.AfterFunc(50*time.Millisecond, func() { cancelled <- time.Now(); cancel() })
		done := make(chan error, 1)
		go func() { done <- op(opCtx) }()
		select {
		case err := <-done:
			returned := time.Now()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s while another process holds the lock: %v, want context.Canceled", name, err)
			}
			select {
			case at := <-cancelled:
				if d := returned.Sub(at); d > 100*time.Millisecond {
					t.Errorf("%s returned %v after its context was cancelled, want within 100ms", name, d)
				}
			default:
				t.Errorf("%s returned %v before its context was cancelled", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still waits for the lock 10s after its context was cancelled", name)
		}
		timer.Stop()
		cancel()
	}
	if got, _ := s.Info(ctx); got != info {
		t.Errorf("Info after the cancelled calls: %+v, want %+v", got, info)
	}
	if ids, _ := readAll(t, s, 1, math.MaxUint64); len(ids) != 1 {
		t.Errorf("records after the cancelled calls: %v", ids)
	}
	h.Kill(t) // the kernel releases its lock
	if id := mustCommit(t, s, "after"); id != 2 {
		t.Errorf("commit after the holder died: id %d, want 2", id)
	}
}

// startHelper runs the test binary as a helper process with a.
func startHelper(t *testing.T, a helperArgs) *testproc.Proc {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return testproc.Start(t, a.Mode+" "+a.Tag, "TestHelperProcess", string(raw))
}

// helperBatch is a Commit a helper reported done.
type helperBatch struct {
	tag         string
	last        uint64
	n, index    int
	big         bool
	description string
}

// parseBatch parses a "batch" line; ok is false for other lines.
func parseBatch(tag, line string, big bool) (helperBatch, bool) {
	b := helperBatch{big: big}
	if _, err := fmt.Sscanf(line, "batch %d %d %d", &b.last, &b.n, &b.index); err != nil {
		return b, false
	}
	b.tag, b.description = tag, line
	return b, true
}

// checkBatches fails the test unless every batch is in got with its
// contents and consecutive ids.
func checkBatches(t *testing.T, batches []helperBatch, got map[uint64]string) {
	t.Helper()
	for _, b := range batches {
		for j := 0; j < b.n; j++ {
			id := b.last - uint64(b.n-1) + uint64(j)
			if want := batchContents(b.tag, b.index, j, b.big); got[id] != want {
				t.Fatalf("%s (%s): id %d holds %.60q, want %.60q", b.tag, b.description, id, got[id], want)
			}
		}
	}
}

func TestMultiProcess(t *testing.T) {
	const writers, commits = 3, 150
	dir := t.TempDir()
	reader := testOpen(t, dir, helperOptions)
	var mu sync.Mutex
	var batches []helperBatch
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		tag := fmt.Sprint("w", w)
		h := startHelper(t, helperArgs{Mode: "writer", Dir: dir, Tag: tag, N: commits})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for line := range h.Lines() {
				if b, ok := parseBatch(tag, line, false); ok {
					mu.Lock()
					batches = append(batches, b)
					mu.Unlock()
				}
			}
			if err := h.Wait(); err != nil {
				t.Errorf("writer %s: %v", tag, err)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	p := logPoller{s: reader}
	p.pollUntil(t, finished)
	seen := p.seen
	if len(batches) != writers*commits {
		t.Fatalf("writers reported %d commits, want %d", len(batches), writers*commits)
	}
	checkBatches(t, batches, seen)
	total := 0
	for _, b := range batches {
		total += b.n
	}
	if len(seen) != total {
		t.Fatalf("poller saw %d records, writers committed %d", len(seen), total)
	}
	t.Logf("%d records from %d processes, %d polls", total, writers, p.polls)
}

func TestCrash(t *testing.T) {
	kills := 10
	if os.Getenv("WHYCACHE_TORTURE") == "1" {
		kills = 200
	}
	dir := t.TempDir()
	// all holds every Commit reported done; those from index verified on
	// are not verified yet. Batches before them are complete and never
	// change, so each round reads only from the last verified id on.
	var all []helperBatch
	verified, from := 0, uint64(1)
	torn := 0
	for k := 0; k < kills; k++ {
		tag := fmt.Sprint("c", k)
		h := startHelper(t, helperArgs{Mode: "crash", Dir: dir, Tag: tag})
		stopAfter := rand.IntN(40) + 1
		killed := false
		for line := range h.Lines() {
			b, ok := parseBatch(tag, line, true)
			if !ok {
				continue
			}
			all = append(all, b)
			if !killed && b.index+1 >= stopAfter {
				h.Signal(os.Kill) // the lines already printed still drain
				killed = true
			}
		}
		if err := h.Wait(); !h.Signaled() {
			t.Fatalf("helper %d was not killed: %v", k, err)
		}

		s, err := Open(dir, helperOptions)
		if err != nil {
			t.Fatal(err)
		}
		if hasTornTail(t, s) {
			torn++
		}
		_, got := readAll(t, s, from, math.MaxUint64)
		checkBatches(t, all[verified:], got)
		last := mustCommit(t, s, batchContents("parent", k, 0, false))
		all = append(all, helperBatch{tag: "parent", last: last, n: 1, index: k, description: "parent commit"})
		verified, from = len(all)-1, last
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := testOpen(t, dir, helperOptions)
	_, got := readAll(t, s, 1, math.MaxUint64)
	checkBatches(t, all, got)
	t.Logf("%d kills, %d left a torn tail, %d commits reported", kills, torn, len(all))
}

// hasTornTail reports whether the tail segment of s has bytes after its
// last complete batch.
func hasTornTail(t *testing.T, s *Store) bool {
	m, err := s.manifest()
	if err != nil || len(m.Segments) == 0 {
		return false
	}
	f, err := os.Open(s.path(m.Segments[len(m.Segments)-1].Name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sc scanner
	if err := sc.start(f, segPos{}, s.readCheck(m, len(m.Segments)-1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := sc.scanToEnd(); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size() > sc.end
}

func TestDiskFull(t *testing.T) {
	h := startHelper(t, helperArgs{Mode: "fsize", Dir: t.TempDir()})
	var out []string
	for line := range h.Lines() {
		switch {
		case strings.HasPrefix(line, "error "):
			t.Logf("helper's failed commit: %s", line)
		case !strings.HasPrefix(line, "PASS"):
			out = append(out, line)
		}
	}
	if err := h.Wait(); err != nil {
		t.Fatalf("helper: %v (output %q)", err, out)
	}
	want := []string{"commit-error true", "unchanged true", "next 2 <nil>"}
	if strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Fatalf("helper printed %q, want %q", out, want)
	}
}
