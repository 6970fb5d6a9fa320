package mysqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

func TestGroupCommitExpectations(t *testing.T) {
	// Calls queued behind a held transaction, expecting the log's identity,
	// another one, or none, in this order: right, none, wrong, none, right.
	// A transaction checks one identity, so the batches are [right, none],
	// [wrong, none] and [right]; the wrong call fails and commits nothing,
	// the call that shared its transaction is committed alone, and the
	// calls of one transaction share its nonce.
	s, _ := testStore(t, Options{})
	ctx := context.Background()
	in, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wrong := in.ID
	wrong[3] ^= 0x40
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.hookBeforeCommit = func(context.Context, uint64, uint64, []*commitReq) error {
		once.Do(func() { close(hold); <-release })
		return nil
	}
	var mu sync.Mutex // guards batches
	var batches []int
	s.hookBatch = func(requests, _ int) {
		mu.Lock()
		batches = append(batches, requests)
		mu.Unlock()
	}
	queued := make(chan struct{}, 8)
	s.hookEnqueue = func() { queued <- struct{}{} }

	type result struct {
		c   logstore.Committed
		err error
	}
	start := func(tag string, expect logstore.LogID) chan result {
		ch := make(chan result, 1)
		go func() {
			c, err := s.Commit(ctx, expect, []logstore.Record{{Contents: recordOf(t, tag, tag)}, {Contents: recordOf(t, tag+"2", tag)}})
			ch <- result{c, err}
		}()
		select {
		case <-queued:
		case r := <-ch:
			t.Fatalf("Commit %s returned %+v, %v without joining the queue", tag, r.c, r.err)
		}
		return ch
	}
	first := start("first", logstore.LogID{})
	<-hold
	calls := []struct {
		tag    string
		expect logstore.LogID
	}{{"right1", in.ID}, {"none1", logstore.LogID{}}, {"wrong", wrong}, {"none2", logstore.LogID{}}, {"right2", in.ID}}
	results := make([]chan result, len(calls))
	for i, c := range calls {
		results[i] = start(c.tag, c.expect)
	}
	close(release)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	got := make([]result, len(calls))
	for i, ch := range results {
		got[i] = <-ch
	}
	if !errors.Is(got[2].err, logstore.ErrLogMismatch) {
		t.Errorf("Commit expecting another identity: %+v, %v; want ErrLogMismatch", got[2].c, got[2].err)
	}
	for _, i := range []int{0, 1, 3, 4} {
		if got[i].err != nil || got[i].c.Nonce == 0 || got[i].c.Last != got[i].c.First+1 {
			t.Errorf("Commit %s = %+v, %v; want two ids and a nonce", calls[i].tag, got[i].c, got[i].err)
		}
	}
	if got[0].c.Nonce != got[1].c.Nonce {
		t.Errorf("right1 and none1 shared a transaction but got nonces %x and %x", got[0].c.Nonce, got[1].c.Nonce)
	}
	if n := got[3].c.Nonce; n == got[1].c.Nonce || n == got[4].c.Nonce {
		t.Errorf("none2 was committed alone but shares nonce %x", n)
	}
	mu.Lock()
	if fmt.Sprint(batches) != "[1 2 2 1 1]" {
		t.Errorf("transactions of %v calls, want [1 2 2 1 1] (first, right1+none1, wrong+none2 refused, none2, right2)", batches)
	}
	mu.Unlock()
	var tags []string
	_, contents := readAll(t, s, 1, 100)
	for _, c := range contents {
		logstore.DecodeRecord(c, func(it logstore.Item) error { tags = append(tags, string(it.Value)); return nil })
	}
	if fmt.Sprint(tags) != "[first first right1 right1 none1 none1 none2 none2 right2 right2]" {
		t.Errorf("log holds %v", tags)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// marksOf returns the marks of a log as last id -> nonce.
func marksOf(t *testing.T, s *Store) map[uint64]uint64 {
	t.Helper()
	rows, err := s.db.Query("SELECT last_id, nonce FROM `" + s.Table() + "_marks`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[uint64]uint64{}
	for rows.Next() {
		var id, nonce uint64
		if err := rows.Scan(&id, &nonce); err != nil {
			t.Fatal(err)
		}
		out[id] = nonce
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// verdictAt polls once from after and returns the verdict.
func verdictAt(t *testing.T, s logstore.Store, after logstore.Position) logstore.Verdict {
	t.Helper()
	res, err := s.Poll(context.Background(), logstore.PollRequest{After: after}, func(logstore.Entry) error { return nil })
	if err != nil {
		t.Fatalf("Poll after %+v: %v", after, err)
	}
	return res.Verdict
}

func TestMarks(t *testing.T) {
	// One mark per commit transaction; raising the horizon prunes the marks
	// below it but the latest; Reset deletes them all.
	s, _ := testStore(t, Options{PageRows: 2})
	ctx := context.Background()
	var commits []logstore.Committed
	for i := range 10 {
		recs := []logstore.Record{{Contents: recordOf(t, "hot", fmt.Sprint(i)), SingleKey: []byte("hot")}}
		if i%3 == 0 {
			recs = append(recs, logstore.Record{Contents: recordOf(t, fmt.Sprint("cold", i), "v")})
		}
		c, err := s.Commit(ctx, logstore.LogID{}, recs)
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
	}
	marks := marksOf(t, s)
	if len(marks) != len(commits) {
		t.Errorf("%d marks for %d commits", len(marks), len(commits))
	}
	for _, c := range commits {
		if marks[c.Last] != c.Nonce {
			t.Errorf("mark of commit %+v: %x", c, marks[c.Last])
		}
		// Every commit's hot record was replaced; its mark still tells.
		if v := verdictAt(t, s, c.Position()); v != logstore.VerdictMatch {
			t.Errorf("Poll at commit %+v: %v, want match", c, v)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	horizon := commits[4].Last + 1 // commits 0..4 end below it
	keep := func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil }
	if _, err := s.Compact(ctx, commits[9].Last, horizon, keep); err != nil {
		t.Fatal(err)
	}
	marks = marksOf(t, s)
	for i, c := range commits {
		if _, ok := marks[c.Last]; ok != (i > 4) {
			t.Errorf("after raising the horizon to %d: mark %d present %v", horizon, c.Last, ok)
		}
	}
	for _, c := range commits[5:] {
		if v := verdictAt(t, s, c.Position()); v != logstore.VerdictMatch {
			t.Errorf("Poll at commit %+v above the horizon: %v, want match", c, v)
		}
		if v := verdictAt(t, s, logstore.Position{ID: c.Last, Nonce: c.Nonce + 1}); v != logstore.VerdictMismatch {
			t.Errorf("Poll at commit %+v above the horizon with another nonce: %v, want mismatch", c, v)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after pruning: %v", err)
	}

	// A horizon above every commit keeps the latest commit's mark only.
	if _, err := s.Compact(ctx, 0, commits[9].Last+100, keep); err != nil {
		t.Fatal(err)
	}
	if marks = marksOf(t, s); len(marks) != 1 || marks[commits[9].Last] != commits[9].Nonce {
		t.Errorf("marks after a horizon above everything: %v, want only the latest commit's", marks)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after pruning all: %v", err)
	}

	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if marks = marksOf(t, s); len(marks) != 0 {
		t.Errorf("marks after Reset: %v", marks)
	}
	res, err := s.Poll(ctx, logstore.PollRequest{After: commits[9].Position()}, func(logstore.Entry) error { return nil })
	if err != nil || res.Latest != (logstore.Position{ID: commits[9].Last}) || res.Verdict == logstore.VerdictMatch {
		t.Errorf("Poll after Reset = %+v, %v; want latest %d without a nonce and no match", res, err, commits[9].Last)
	}
	c, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, "after", "reset")}})
	if err != nil || c.First != commits[9].Last+1 {
		t.Errorf("Commit after Reset = %+v, %v; want id %d", c, err, commits[9].Last+1)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after Reset: %v", err)
	}
}

func TestCommitIdentityInTransaction(t *testing.T) {
	// Another process resets the log (a new identity) just before a
	// commit's transaction begins: the commit, expecting the old identity,
	// must fail and leave nothing in the new log. A check before the
	// transaction would pass and commit into the new log.
	s, db := testStore(t, Options{})
	ctx := context.Background()
	old, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := testStoreOn(t, mysqltest.DB(t), s.Table(), Options{})
	var once sync.Once
	s.hookBatch = func(int, int) {
		once.Do(func() {
			if err := other.Reset(ctx); err != nil {
				t.Errorf("Reset: %v", err)
			}
		})
	}
	c, err := s.Commit(ctx, old.ID, []logstore.Record{{Contents: recordOf(t, "k", "for the old log")}})
	if !errors.Is(err, logstore.ErrLogMismatch) {
		t.Fatalf("Commit expecting the identity a Reset just replaced = %+v, %v; want ErrLogMismatch", c, err)
	}
	if ids, _ := readAll(t, s, 1, 100); len(ids) != 0 {
		t.Errorf("the new log holds %v", ids)
	}
	if n := countRows(t, db, "SELECT COUNT(*) FROM `"+s.Table()+"_marks`"); n != 0 {
		t.Errorf("the new log holds %d marks", n)
	}
	in, err := s.Info(ctx)
	if err != nil || in.ID == old.ID {
		t.Fatalf("Info = %+v, %v; want a new identity", in, err)
	}
	if _, err := s.Commit(ctx, in.ID, []logstore.Record{{Contents: recordOf(t, "k", "for the new log")}}); err != nil {
		t.Errorf("Commit expecting the new identity: %v", err)
	}
}
