package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// polled is what one sequence of Poll calls (until More is false) saw.
type polled struct {
	first   logstore.PollResult // the first call's result
	last    logstore.PollResult // the last call's result
	entries []logstore.Entry    // every delivered entry, contents copied
	calls   int
}

// pollAll polls from after until a call returns More == false, max records
// per call, checking the order of the entries and the Next positions.
func pollAll(ctx context.Context, s logstore.Store, after logstore.Position, max int) (polled, error) {
	var p polled
	req := logstore.PollRequest{After: after, Max: max}
	for {
		n := 0
		res, err := s.Poll(ctx, req, func(e logstore.Entry) error {
			if e.ID <= req.After.ID {
				return fmt.Errorf("entry %d delivered after position %d", e.ID, req.After.ID)
			}
			if k := len(p.entries); k > 0 && e.ID <= p.entries[k-1].ID {
				return fmt.Errorf("entry %d delivered after entry %d", e.ID, p.entries[k-1].ID)
			}
			e.Contents = bytes.Clone(e.Contents)
			p.entries = append(p.entries, e)
			n++
			return nil
		})
		if err != nil {
			return p, err
		}
		p.calls++
		if p.calls == 1 {
			p.first = res
		}
		p.last = res
		if n > 0 {
			if got, want := res.Next, p.entries[len(p.entries)-1].Position(); got != want {
				return p, fmt.Errorf("Poll.Next = %+v, want the last entry's position %+v", got, want)
			}
		} else if res.Next != req.After {
			return p, fmt.Errorf("Poll delivered nothing but Next = %+v, want After %+v", res.Next, req.After)
		}
		if max > 0 && n > max {
			return p, fmt.Errorf("Poll delivered %d entries with Max %d", n, max)
		}
		if !res.More {
			if e := len(p.entries); e > 0 && p.entries[e-1].ID > res.Latest.ID {
				return p, fmt.Errorf("entry %d delivered above Latest %d", p.entries[e-1].ID, res.Latest.ID)
			}
			return p, nil
		}
		if n == 0 {
			return p, fmt.Errorf("Poll set More but delivered nothing")
		}
		req.After = res.Next
	}
}

// mustPoll is pollAll on the test goroutine.
func mustPoll(t *testing.T, s logstore.Store, after logstore.Position, max int) polled {
	t.Helper()
	p, err := pollAll(context.Background(), s, after, max)
	if err != nil {
		t.Fatalf("Poll after %+v: %v", after, err)
	}
	return p
}

// commitNonce commits recs and returns the result.
func commitNonce(t *testing.T, s logstore.Store, recs ...logstore.Record) logstore.Committed {
	t.Helper()
	res, err := s.Commit(context.Background(), logstore.LogID{}, recs)
	if err != nil {
		t.Fatalf("Commit(%d records): %v", len(recs), err)
	}
	return res
}

// testCommitIdentity checks the results of Commit: consecutive ids, a
// non-zero nonce new for every commit (unless the store keeps none), and
// that a commit expecting another log identity commits nothing.
func testCommitIdentity(t *testing.T, h Harness) {
	f := newFixture(t, h)
	in := info(t, f.s)
	nonces := map[uint64]bool{}
	var want []stored
	var prev logstore.Position
	for i, n := range []int{1, 3, 2} {
		recs := records(t, fmt.Sprintf("n%d", i), n)
		res, err := f.s.Commit(f.ctx, in.ID, recs)
		if err != nil {
			t.Fatalf("Commit expecting the log's own identity: %v", err)
		}
		if res.Prev != prev && (!h.NoNonces || res.Prev.ID != prev.ID) {
			t.Errorf("Commit %d: Prev = %+v, want the previous commit's last position %+v", i, res.Prev, prev)
		}
		prev = res.Position()
		if res.Last-res.First+1 != uint64(n) {
			t.Fatalf("Commit of %d records returned ids %d..%d", n, res.First, res.Last)
		}
		for j, r := range recs {
			want = append(want, stored{id: res.First + uint64(j), contents: r.Contents})
		}
		switch {
		case h.NoNonces && res.Nonce != 0:
			t.Errorf("Commit returned nonce %x from a store without nonces", res.Nonce)
		case !h.NoNonces && (res.Nonce == 0 || nonces[res.Nonce]):
			t.Errorf("Commit %d returned nonce %x, want a new non-zero one", i, res.Nonce)
		}
		nonces[res.Nonce] = true
	}
	other := in.ID
	other[0] ^= 0xff
	before := latest(t, f.s)
	_, err := f.s.Commit(f.ctx, other, records(t, "foreign", 2))
	if !errors.Is(err, logstore.ErrLogMismatch) {
		t.Errorf("Commit expecting another identity: %v, want ErrLogMismatch", err)
	}
	if got := latest(t, f.s); got != before {
		t.Errorf("LatestUpdateID = %d after the refused commit, want %d", got, before)
	}
	expectRecords(t, "after the refused commit", readAll(t, f.s, 0, all), want)
}

// testPoll checks Poll on an empty log and after commits: what it
// delivers, in pages and whole, the latest position and the verdicts.
func testPoll(t *testing.T, h Harness) {
	f := newFixture(t, h)
	empty := mustPoll(t, f.s, logstore.Position{}, 0)
	if len(empty.entries) != 0 || empty.last.Latest != (logstore.Position{}) || empty.last.Verdict != logstore.VerdictNone {
		t.Errorf("Poll of an empty log: %d entries, %+v", len(empty.entries), empty.last)
	}
	if empty.last.Info != info(t, f.s) {
		t.Errorf("Poll.Info = %+v, Info = %+v", empty.last.Info, info(t, f.s))
	}
	var commits []logstore.Committed
	var want []stored
	for i, n := range []int{2, 1, 4, 3} {
		recs := records(t, fmt.Sprintf("p%d", i), n)
		c := commitNonce(t, f.s, recs...)
		commits = append(commits, c)
		for j, r := range recs {
			want = append(want, stored{id: c.First + uint64(j), contents: r.Contents})
		}
	}
	last := commits[len(commits)-1]
	nonceOf := func(id uint64) uint64 {
		for _, c := range commits {
			if id >= c.First && id <= c.Last {
				return c.Nonce
			}
		}
		return 0
	}
	check := func(what string, p polled, from uint64) {
		t.Helper()
		var got []stored
		for _, e := range p.entries {
			got = append(got, stored{id: e.ID, contents: e.Contents})
			if e.Nonce != nonceOf(e.ID) {
				t.Errorf("%s: entry %d has nonce %x, its commit %x", what, e.ID, e.Nonce, nonceOf(e.ID))
			}
		}
		expectRecords(t, what, got, filter(want, from+1, all))
		if p.last.Latest != last.Position() {
			t.Errorf("%s: Latest = %+v, want %+v", what, p.last.Latest, last.Position())
		}
	}
	whole := mustPoll(t, f.s, logstore.Position{}, 0)
	check("Poll of everything", whole, 0)
	if whole.first.Verdict != logstore.VerdictNone {
		t.Errorf("Poll from the zero position: verdict %v, want none", whole.first.Verdict)
	}
	paged := mustPoll(t, f.s, logstore.Position{}, 2)
	check("Poll in pages of 2", paged, 0)
	if paged.calls < 5 {
		t.Errorf("Poll with Max 2 of %d records took %d calls", len(want), paged.calls)
	}
	mid := commits[1].Position()
	for _, tc := range []struct {
		name  string
		after logstore.Position
		want  logstore.Verdict
		from  uint64
	}{
		{"at the latest position", last.Position(), logstore.VerdictMatch, last.Last},
		{"at a middle commit", mid, logstore.VerdictMatch, mid.ID},
		{"inside a commit", logstore.Position{ID: commits[2].First + 1, Nonce: commits[2].Nonce}, logstore.VerdictMatch, commits[2].First + 1},
		{"at a middle id without nonce", logstore.Position{ID: mid.ID}, logstore.VerdictMatch, mid.ID},
		{"above the latest id", logstore.Position{ID: last.Last + 3, Nonce: last.Nonce}, logstore.VerdictAhead, all},
	} {
		p := mustPoll(t, f.s, tc.after, 0)
		if tc.want == logstore.VerdictAhead {
			if p.first.Verdict != tc.want {
				t.Errorf("Poll %s: verdict %v, want %v", tc.name, p.first.Verdict, tc.want)
			}
			continue
		}
		check("Poll "+tc.name, p, tc.from)
		if p.first.Verdict != tc.want {
			t.Errorf("Poll %s: verdict %v, want %v", tc.name, p.first.Verdict, tc.want)
		}
	}
	if h.NoNonces {
		return
	}
	for _, tc := range []struct {
		name  string
		after logstore.Position
	}{
		{"at the latest id with another nonce", logstore.Position{ID: last.Last, Nonce: last.Nonce ^ 1}},
		{"at a middle id with another nonce", logstore.Position{ID: mid.ID, Nonce: mid.Nonce ^ 1}},
		{"inside a commit with another commit's nonce", logstore.Position{ID: commits[2].First, Nonce: commits[1].Nonce}},
	} {
		p := mustPoll(t, f.s, tc.after, 0)
		if p.first.Verdict != logstore.VerdictMismatch {
			t.Errorf("Poll %s: verdict %v, want mismatch", tc.name, p.first.Verdict)
		}
	}
}

// testPollTraces checks that a commit stays verifiable after its records
// are gone: replaced by newer single-key records (stores that replace) or
// dropped by Compact above the horizon.
func testPollTraces(t *testing.T, h Harness) {
	if h.NoNonces {
		t.Skip("the store keeps no nonces")
	}
	f := newFixture(t, h)
	key := []byte("hot")
	single := func(tag string) logstore.Record {
		return logstore.Record{Contents: contents(t, tag), SingleKey: key}
	}
	a := commitNonce(t, f.s, single("a"))
	b := commitNonce(t, f.s, single("b"), single("c"))
	plain := commitNonce(t, f.s, records(t, "plain", 3)...)
	d := commitNonce(t, f.s, single("d"))
	_ = commitNonce(t, f.s, records(t, "tail", 1)...)
	// Drop the middle record of the plain commit and all of it but its
	// first, with the horizon below all of them.
	_, err := f.s.Compact(f.ctx, plain.Last, 0, func(id uint64, c []byte) ([]byte, bool, error) {
		return c, id < plain.First || id > plain.Last || id == plain.First, nil
	})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    logstore.Committed
		id   uint64
	}{
		{"a replaced single-key commit", a, a.Last},
		{"a commit whose first record was replaced in it", b, b.First},
		{"a commit whose last records were compacted away", plain, plain.Last},
		{"a commit inside the compacted records", plain, plain.First + 1},
		{"a single-key commit replaced by nothing", d, d.Last},
	} {
		right := mustPoll(t, f.s, logstore.Position{ID: tc.id, Nonce: tc.c.Nonce}, 0)
		if right.first.Verdict != logstore.VerdictMatch {
			t.Errorf("Poll at %s (id %d) with its nonce: verdict %v, want match", tc.name, tc.id, right.first.Verdict)
		}
		wrong := mustPoll(t, f.s, logstore.Position{ID: tc.id, Nonce: tc.c.Nonce ^ 0x5a}, 0)
		if wrong.first.Verdict != logstore.VerdictMismatch {
			t.Errorf("Poll at %s (id %d) with another nonce: verdict %v, want mismatch", tc.name, tc.id, wrong.first.Verdict)
		}
	}
}

// testPollBackwards restores a backup of the log and checks that positions
// past the backup are judged ahead (no new commits reached them) or
// mismatched (new commits reused their ids), for 0, 1, a few and many
// commits after the restore.
func testPollBackwards(t *testing.T, h Harness) {
	if h.Backup == nil {
		t.Skip("the harness cannot back up and restore a log")
	}
	for _, after := range []int{0, 1, 3, 12} {
		t.Run(fmt.Sprintf("%d commits after the restore", after), func(t *testing.T) {
			f := newFixture(t, h)
			commitNonce(t, f.s, records(t, "before", 3)...)
			restore := h.Backup(t, f.s)
			lost1 := commitNonce(t, f.s, records(t, "lost", 2)...)
			lost2 := commitNonce(t, f.s, records(t, "lost-too", 3)...)
			restore(t)
			s := f.handle(t) // a reader opening the restored log
			var last logstore.Committed
			for i := 0; i < after; i++ {
				last = commitNonce(t, s, records(t, fmt.Sprintf("new%d", i), 1)...)
			}
			for _, pos := range []logstore.Position{lost1.Position(), lost2.Position(), {ID: lost2.First, Nonce: lost2.Nonce}} {
				p := mustPoll(t, s, pos, 0)
				v := p.first.Verdict
				switch {
				case pos.ID > p.first.Latest.ID && v != logstore.VerdictAhead:
					t.Errorf("position %+v above the restored latest %d: verdict %v, want ahead", pos, p.first.Latest.ID, v)
				case pos.ID <= p.first.Latest.ID && !h.NoNonces && v != logstore.VerdictMismatch:
					t.Errorf("position %+v of a lost commit, its id reused (latest %+v): verdict %v, want mismatch", pos, last.Position(), v)
				}
			}
		})
	}
}

// testPollSnapshot checks the snapshot promise of Poll while writers
// replace a few hot single keys: after every complete poll, the poller's
// copy holds, for each key, the value of the newest record at or below
// Latest.ID.
func testPollSnapshot(t *testing.T, h Harness) {
	f := newFixture(t, h)
	const keys, writers, perWriter = 4, 3, 150
	type write struct {
		id  uint64
		key string
		val string
	}
	var mu sync.Mutex
	var writes []write
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		s := f.handle(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				key := fmt.Sprintf("k%d", (w+i)%keys)
				val := fmt.Sprintf("w%d-%d", w, i)
				c, err := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte(key), Value: []byte(val)}})
				if err == nil {
					var res logstore.Committed
					res, err = s.Commit(context.Background(), logstore.LogID{}, []logstore.Record{{Contents: c, SingleKey: []byte(key)}})
					mu.Lock()
					writes = append(writes, write{res.Last, key, val})
					mu.Unlock()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	type seen struct {
		latest uint64
		state  map[string]string
	}
	var polls []seen
	reader := f.handle(t)
	state := map[string]string{}
	ids := map[string]uint64{}
	pos := logstore.Position{}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		p, err := pollAll(context.Background(), reader, pos, 3)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		for _, e := range p.entries {
			err := logstore.DecodeRecord(e.Contents, func(it logstore.Item) error {
				if k := string(it.Key); e.ID > ids[k] {
					ids[k], state[k] = e.ID, string(it.Value)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("entry %d: %v", e.ID, err)
			}
		}
		pos = p.last.Latest
		cp := make(map[string]string, len(state))
		for k, v := range state {
			cp[k] = v
		}
		polls = append(polls, seen{pos.ID, cp})
	}
	select {
	case err := <-errs:
		t.Fatalf("writer: %v", err)
	default:
	}
	bad := 0
	for _, p := range polls {
		newest := map[string]write{}
		for _, w := range writes {
			if w.id <= p.latest && w.id > newest[w.key].id {
				newest[w.key] = w
			}
		}
		for k, w := range newest {
			if p.state[k] != w.val {
				if bad++; bad <= 5 {
					t.Errorf("poll at latest %d holds %s=%q, but record %d (<= latest) wrote %q", p.latest, k, p.state[k], w.id, w.val)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d stale keys in %d polls", bad, len(polls))
	}
}

// testPollStops checks that an error from Poll's callback stops the call
// and comes back with the snapshot's result: Info, Latest and Verdict, and
// Next at the last entry the callback accepted.
func testPollStops(t *testing.T, h Harness) {
	f := newFixture(t, h)
	a := commitNonce(t, f.s, records(t, "s", 3)...)
	b := commitNonce(t, f.s, records(t, "t", 2)...)
	errStop := errors.New("stop here")
	for _, after := range []logstore.Position{{}, {ID: a.First, Nonce: a.Nonce}} {
		calls := 0
		var accepted logstore.Position
		res, err := f.s.Poll(f.ctx, logstore.PollRequest{After: after}, func(e logstore.Entry) error {
			calls++
			if calls == 2 {
				return errStop
			}
			accepted = e.Position()
			return nil
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("Poll returned %v, want the callback's error", err)
		}
		if calls != 2 {
			t.Errorf("callback called %d times, want 2", calls)
		}
		wantVerdict := logstore.VerdictNone
		if after.ID != 0 {
			wantVerdict = logstore.VerdictMatch
		}
		if res.Latest != b.Position() || res.Verdict != wantVerdict || res.Info != info(t, f.s) {
			t.Errorf("Poll after %+v stopped by the callback: result %+v, want latest %+v, verdict %v", after, res, b.Position(), wantVerdict)
		}
		if res.Next != accepted {
			t.Errorf("Poll stopped by the callback: Next = %+v, want the accepted entry %+v", res.Next, accepted)
		}
	}
}
