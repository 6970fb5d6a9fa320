package whycache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore/memstore"
)

// instRoleCrasher writes and updates in a loop until it is killed (or
// stdin closes): it prints "ready", calls Update, then runs random writes
// on Keys (counters from Base, acked like the writer's), with an Update
// now and then and, rarely, DeleteSharedState (so that a later Update
// rebuilds the state from the log).
func instRoleCrasher(h *instHelper) error {
	a := h.args
	rng := rand.New(rand.NewPCG(a.Seed, uint64(a.Base)))
	h.emit("ready")
	if err := h.c.Update(h.ctx); err != nil {
		return err
	}
	for cnt := a.Base; !h.stopped(nil); cnt++ {
		switch r := rng.IntN(100); {
		case r < 8:
			if err := h.c.Update(h.ctx); err != nil {
				return err
			}
		case r < 9:
			if err := h.c.DeleteSharedState(); err != nil {
				return err
			}
		default:
			ack, err := instRandomWrite(h.ctx, h.c, rng, a.Keys, a.MaxMulti, a.Writer, cnt)
			if err != nil {
				return fmt.Errorf("operation %d: %w", cnt, err)
			}
			h.emit("%s", ack)
		}
	}
	return nil
}

// prefixMatching returns the largest n such that replaying records [0, n)
// gives exactly state, or -1 if no prefix of the log does.
func (l *instLog) prefixMatching(state []Item) int {
	want := make(map[string]string, len(state))
	for _, it := range state {
		want[string(it.Key)] = string(it.Value)
	}
	cur := map[string]string{}
	mismatch := func(k string) int {
		w, inWant := want[k]
		c, inCur := cur[k]
		if inWant != inCur || w != c {
			return 1
		}
		return 0
	}
	diff, best := len(want), -1
	if diff == 0 {
		best = 0
	}
	for i, items := range l.items {
		for _, it := range items {
			k := string(it.Key)
			diff -= mismatch(k)
			if it.Delete {
				delete(cur, k)
			} else {
				cur[k] = string(it.Value)
			}
			diff += mismatch(k)
		}
		if diff == 0 {
			best = i + 1
		}
	}
	return best
}

// TestInstanceCrash SIGKILLs a process that writes, updates and now and
// then deletes its state (file store), at random instants, again and
// again. Between runs another machine writes, and every fourth time
// rewrites the history with a delete marker dropped, so that the next
// run's first Update rebuilds the state beside the old one. After each
// kill a fresh Instance on the same state file finds a state that passes
// Check and, when valid and not behind a rewrite, equals the replay of a
// prefix of the log; Update then succeeds and the state equals the replay
// of the whole log; every write acknowledged since the last rewrite is in
// the log.
func TestInstanceCrash(t *testing.T) {
	kills := instOps(30, 200)
	ctx := context.Background()
	store, base := instProcStores()[0].open(t)
	state := filepath.Join(t.TempDir(), "state")
	// The helpers are dead whenever this process sweeps: no grace needed.
	defer func(g time.Duration) { tempStateGrace = g }(tempStateGrace)
	tempStateGrace = 0
	other := newInstance(t, store, Options{}) // another machine
	mustUpdate(t, other)
	var keys []string
	for i := 0; i < 200; i++ {
		keys = append(keys, fmt.Sprintf("c%03d", i))
	}
	seed := rand.Uint64()
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0))
	var acks []instAck // since the last rewrite
	otherCounter, totalAcks := 0, 0
	var valid, behind, midTx, rewrites, rebuilding, swept int
	var prevRecoveries, rewriteLimit uint64
	start := time.Now()
	for k := 0; k < kills; k++ {
		// Records from another machine give the first Update of each run
		// work to do; a rewrite that drops a delete marker makes it a
		// rebuild.
		rewrite := k%4 == 3
		for i := rng.IntN(4); i > 0; i-- {
			otherCounter++
			ack, err := instRandomWrite(ctx, other, rng, keys, 8, 1000, otherCounter)
			if err != nil {
				t.Fatal(err)
			}
			acks = append(acks, ack)
		}
		if rewrite {
			if _, err := other.Delete(ctx, []byte(keys[rng.IntN(len(keys))])); err != nil {
				t.Fatal(err)
			}
			st, err := other.RewriteHistoryStats(ctx, 0, RewriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Horizon == 0 {
				t.Fatalf("rewrite %+v dropped no delete marker", st)
			}
			rewriteLimit, acks = st.Limit, nil
			rewrites++
		}
		a := base
		a.Role, a.State, a.Writer, a.Seed, a.Base = "crasher", state, 1, seed, (k+1)*1_000_000
		a.Keys, a.MaxMulti = keys, 120
		p := startInstProc(t, fmt.Sprint("crasher", k), a)
		from, _, ok := p.await(0, "ready")
		n := rng.IntN(30)
		if rewrite && rng.IntN(2) == 0 {
			n = 0 // kill during the rebuild, perhaps
		}
		for ; ok && n > 0; n-- {
			from, _, ok = p.await(from+1, "ack ")
		}
		if !ok {
			t.Fatalf("crasher %d ended before it was killed: %s", k, p.output())
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		p.Kill(t)
		run := parseInstAcks(t, p.protocol())
		acks = append(acks, run...)
		totalAcks += len(run)

		c, err := Open(store, Options{StatePath: state})
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprint("after kill ", k)
		if err := c.Check(); err != nil {
			t.Fatalf("%s: Check: %v", name, err)
		}
		st, err := c.Stats(nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Recoveries > prevRecoveries {
			midTx++ // the kill interrupted a transaction on the state file
		}
		l := readInstLog(t, store)
		switch {
		case !c.Valid():
		case st.UpdateID < rewriteLimit:
			rebuilding++ // a state from before the rewrite, which Update rebuilds
		default:
			valid++
			n := l.prefixMatching(instItems(c))
			if n < 0 {
				t.Fatalf("%s: the state (%d keys, UpdateID %d) is the replay of no prefix of the log (%d records)",
					name, st.Keys, st.UpdateID, len(l.ids))
			}
			if n < len(l.ids) {
				behind++
			}
		}
		left := instTempFiles(t, state)
		if err := c.Update(ctx); err != nil {
			t.Fatalf("%s: Update: %v", name, err)
		}
		wantReplay(t, name, c, l)
		if now := instTempFiles(t, state); len(now) != 0 {
			t.Fatalf("%s: temporary state files %q remain after Update (%q before)", name, now, left)
		}
		swept += len(left)
		checkAcks(t, l, acks, false)
		if st, err = c.Stats(nil); err != nil {
			t.Fatal(err)
		}
		prevRecoveries = st.Recoveries
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	l := readInstLog(t, store)
	t.Logf("%d kills in %v, %d rewrites: %d left a valid state checked against the log (%d of them behind it), %d a state from before a rewrite, %d an unfilled state; %d interrupted a state transaction",
		kills, time.Since(start).Round(time.Millisecond), rewrites, valid, behind, rebuilding, kills-valid-rebuilding, midTx)
	t.Logf("%d acked writes; at the end %d records, %d keys; %d temporary state files of killed rebuilds swept",
		totalAcks+otherCounter, len(l.ids), len(l.replay(len(l.items))), swept)
}

// instTempFiles returns the names of the temporary state files beside
// the state file at path.
func instTempFiles(t *testing.T, path string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if isTempStateName(filepath.Base(path), e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestInstanceSweepTemps checks which files beside a state file a sweep
// removes: temporary state files that no builder holds and that are older
// than the grace period, and no others.
// tempPath returns the path of a new temporary state file name of c.
func tempPath(c *Instance, what string) string { return c.dir.Join(c.tempStateName(what)) }

func TestInstanceSweepTemps(t *testing.T) {
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	defer func(g time.Duration) { tempStateGrace = g }(tempStateGrace)
	tempStateGrace = time.Hour
	path := c.StatePath()
	cases := []struct {
		name            string
		path            string
		old, held, gone bool
	}{
		{"stale rebuild", tempPath(c, "rebuild"), true, false, true},
		{"stale load", tempPath(c, "load"), true, false, true},
		{"stale rewrite", tempPath(c, "rewrite"), true, false, true},
		{"stale export", tempPath(c, "export"), true, false, true},
		{"held by its builder", tempPath(c, "rebuild"), true, true, false},
		{"within the grace period", tempPath(c, "load"), false, false, false},
		{"unknown kind", path + ".backup-0123456789ab", true, false, false},
		{"malformed suffix", path + ".rebuild-0123456789xy", true, false, false},
		{"another state's", filepath.Join(filepath.Dir(path), "other.rebuild-0123456789ab"), true, false, false},
		{"the swap lock", path + ".lock", true, false, false},
	}
	for _, tc := range cases {
		if err := os.WriteFile(tc.path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if tc.old {
			past := time.Now().Add(-2 * tempStateGrace)
			if err := os.Chtimes(tc.path, past, past); err != nil {
				t.Fatal(err)
			}
		}
		if tc.held {
			c.lockTemp(filepath.Base(tc.path))
			defer c.removeTemp(filepath.Base(tc.path))
		}
	}
	c.sweepTemps()
	for _, tc := range cases {
		_, err := os.Stat(tc.path)
		if gone := errors.Is(err, fs.ErrNotExist); gone != tc.gone {
			t.Errorf("%s (%s): removed %v, want %v (%v)", tc.name, filepath.Base(tc.path), gone, tc.gone, err)
		}
	}
	if !c.Valid() {
		t.Fatal("the state itself went away")
	}
}

// TestInstanceUpdateIDHidesOpenBatch checks that UpdateID and Valid do not
// report the meta words of a batch that has not committed (a batch writes
// them in place, and a rollback or a crash undoes them): a call made while
// the batch is open returns the committed values.
func TestInstanceUpdateIDHidesOpenBatch(t *testing.T) {
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, tc := range []struct {
		name  string
		fill  bool
		meta  int
		value uint64
	}{
		{"UpdateID of a filled state", true, metaUpdateID, 1000},
		{"Valid of an empty state", false, metaFilled, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newInstance(t, store, Options{})
			if tc.fill {
				mustUpdate(t, c)
				mustSet(t, c, "a", "1")
				mustUpdate(t, c)
			}
			read := func() string { return fmt.Sprint(c.UpdateID(), c.Valid()) }
			want := read()
			tr, err := c.tree()
			if err != nil {
				t.Fatal(err)
			}
			b, err := tr.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if err := b.SetMeta(tc.meta, tc.value); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() { got <- read() }()
			select {
			case g := <-got:
				b.Rollback()
				t.Fatalf("read %s while the batch was open, want %s after it", g, want)
			case <-time.After(20 * time.Millisecond): // the read waits for the batch
			}
			if err := b.Rollback(); err != nil {
				t.Fatal(err)
			}
			if g := <-got; g != want {
				t.Fatalf("read %s, want %s", g, want)
			}
		})
	}
}
