package whycache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// instOps returns normal, or torture when the long variants run
// (WHYCACHE_TORTURE=1).
func instOps(normal, torture int) int {
	if os.Getenv("WHYCACHE_TORTURE") == "1" {
		return torture
	}
	return normal
}

// Values written by the multi-process tests are "W.C.padding": the
// writer's number and a counter that the writer increases with every
// operation, so a value names the operation that wrote it.

// instValue returns a value of writer w's operation c with random padding.
func instValue(rng *rand.Rand, w, c int) []byte {
	pad := make([]byte, rng.IntN(48))
	for i := range pad {
		pad[i] = byte('a' + rng.IntN(26))
	}
	return fmt.Appendf(nil, "%d.%d.%s", w, c, pad)
}

// parseInstValue returns the writer and counter of a value.
func parseInstValue(v []byte) (w, c int, ok bool) {
	f := strings.SplitN(string(v), ".", 3)
	if len(f) != 3 {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(f[0])
	c, err2 := strconv.Atoi(f[1])
	return w, c, err1 == nil && err2 == nil
}

// instAck is a write that returned success: "ack W C ID set|del K1,K2,...".
type instAck struct {
	writer, counter int
	id              uint64
	del             bool
	keys            []string
}

func (a instAck) String() string {
	kind := "set"
	if a.del {
		kind = "del"
	}
	return fmt.Sprintf("ack %d %d %d %s %s", a.writer, a.counter, a.id, kind, strings.Join(a.keys, ","))
}

// parseInstAcks returns the acks among protocol lines.
func parseInstAcks(t *testing.T, lines []string) []instAck {
	t.Helper()
	var acks []instAck
	for _, l := range lines {
		if !strings.HasPrefix(l, "ack ") {
			continue
		}
		var a instAck
		var kind, keys string
		if _, err := fmt.Sscanf(l, "ack %d %d %d %s %s", &a.writer, &a.counter, &a.id, &kind, &keys); err != nil {
			t.Fatalf("bad ack line %q: %v", l, err)
		}
		a.del, a.keys = kind == "del", strings.Split(keys, ",")
		acks = append(acks, a)
	}
	return acks
}

// instRandomWrite runs one random write of writer w's operation c on keys:
// Set, Delete, SetMulti or DeleteMulti of up to maxMulti distinct keys.
func instRandomWrite(ctx context.Context, c *Instance, rng *rand.Rand, keys []string, maxMulti, w, cnt int) (instAck, error) {
	a := instAck{writer: w, counter: cnt}
	n := 1
	r := rng.IntN(100)
	if r >= 60 {
		n = 2 + rng.IntN(max(1, min(maxMulti, len(keys))-1))
	}
	a.del = r >= 45 && r < 60 || r >= 90
	for _, i := range rng.Perm(len(keys))[:n] {
		a.keys = append(a.keys, keys[i])
	}
	var err error
	switch {
	case a.del && n == 1:
		a.id, err = c.Delete(ctx, []byte(a.keys[0]))
	case a.del:
		bk := make([][]byte, n)
		for i, k := range a.keys {
			bk[i] = []byte(k)
		}
		a.id, err = c.DeleteMulti(ctx, bk)
	case n == 1:
		a.id, err = c.Set(ctx, []byte(a.keys[0]), instValue(rng, w, cnt))
	default:
		items := make([]Item, n)
		for i, k := range a.keys {
			items[i] = Item{Key: []byte(k), Value: instValue(rng, w, cnt)}
		}
		a.id, err = c.SetMulti(ctx, items)
	}
	return a, err
}

// instRoleWriter runs Threads goroutines (writers Writer*10+g) that each
// make Ops random writes on Keys and print an ack for each. Writes of
// goroutines sharing the instance often commit in one group and are then
// applied locally in either order, which is what per-key record ids must
// sort out. Goroutine 0 calls Update every UpdateEvery operations.
func instRoleWriter(h *instHelper) error {
	a := h.args
	errs := make(chan error, max(1, a.Threads))
	for g := range cap(errs) {
		go func() {
			w := a.Writer*10 + g
			rng := rand.New(rand.NewPCG(a.Seed, uint64(w)))
			for cnt := 1; cnt <= a.Ops; cnt++ {
				ack, err := instRandomWrite(h.ctx, h.c, rng, a.Keys, a.MaxMulti, w, cnt)
				if err != nil {
					errs <- fmt.Errorf("writer %d operation %d: %w", w, cnt, err)
					return
				}
				h.emit("%s", ack)
				if g == 0 && a.UpdateEvery > 0 && cnt%a.UpdateEvery == 0 {
					if err := h.c.Update(h.ctx); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	var err error
	for range cap(errs) {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		return err
	}
	return h.c.Update(h.ctx)
}

// instRoleReader reads Keys in a loop until stdin closes: Get of every
// key, and every eighth pass an iteration with All. It prints "obs K W C"
// when it sees key K at a value it did not see last, and "gone K" when a
// key it saw is missing. A read error other than ErrNotFound fails it. It
// calls Update every UpdateEvery passes, counting failures. The command
// "probe" and the end print "reads READS UPDATES FAILED-UPDATES".
func instRoleReader(h *instHelper) error {
	a := h.args
	known := make(map[string]bool, len(a.Keys))
	for _, k := range a.Keys {
		known[k] = true
	}
	last := map[string]string{} // key -> "W C" last seen, "" when missing
	var reads, updates, failed int
	observe := func(k string, v []byte, found bool) error {
		reads++
		if !known[k] {
			return fmt.Errorf("read a key %q that no writer writes", k)
		}
		if !found {
			if last[k] != "" {
				h.emit("gone %s", k)
				last[k] = ""
			}
			return nil
		}
		w, c, ok := parseInstValue(v)
		if !ok {
			return fmt.Errorf("key %s holds a value no writer wrote: %q", k, v)
		}
		if tag := fmt.Sprint(w, " ", c); last[k] != tag {
			h.emit("obs %s %s", k, tag)
			last[k] = tag
		}
		return nil
	}
	report := func(string) { h.emit("reads %d %d %d", reads, updates, failed) }
	for pass := 1; !h.stopped(report); pass++ {
		if pass%8 == 0 {
			for k, v := range h.c.All() {
				if err := observe(string(k), v, true); err != nil {
					return err
				}
			}
		} else {
			for _, k := range a.Keys {
				v, err := h.c.Get([]byte(k))
				if err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("Get(%s) after %d reads: %w", k, reads, err)
				}
				if err := observe(k, v, err == nil); err != nil {
					return err
				}
			}
		}
		if a.UpdateEvery > 0 && pass%a.UpdateEvery == 0 {
			updates++
			if h.c.Update(h.ctx) != nil {
				failed++
			}
		}
	}
	report("")
	return nil
}

// instConvergeKeys returns the keys every writer shares and those writer w
// alone writes.
func instConvergeKeys(writers int) (shared []string, own [][]string) {
	for i := 0; i < 12; i++ {
		shared = append(shared, fmt.Sprintf("s%02d", i))
	}
	own = make([][]string, writers)
	for w := range own {
		for i := 0; i < 8; i++ {
			own[w] = append(own[w], fmt.Sprintf("p%d-%02d", w, i))
		}
	}
	return shared, own
}

// TestInstanceConvergeProcesses runs 4 writer processes on 2 machines (2
// state files, 2 writers each) and a reader process per machine on one
// log. Writers conflict on shared keys and call Update from time to time.
// At the end both states equal the replay of the whole log, every
// acknowledged write is in the log, and no reader saw a key go back to an
// older record's value.
func TestInstanceConvergeProcesses(t *testing.T) {
	const writers, threads, machines = 4, 2, 2
	ops := instOps(100, 2000)
	forEachProcStore(t, func(t *testing.T, ps instProcStore, store logstore.Store, base instHelperArgs) {
		seed := rand.Uint64()
		t.Logf("seed %d, %d processes of %d goroutines, %d operations each", seed, writers, threads, ops)
		shared, own := instConvergeKeys(writers)
		all := slices.Concat(append([][]string{shared}, own...)...)
		var states [machines]*Instance
		var readers [machines]*instProc
		for m := range states {
			states[m] = newInstance(t, store, Options{})
			mustUpdate(t, states[m])
			a := base
			a.Role, a.State, a.Keys = "reader", states[m].StatePath(), all
			readers[m] = startInstProc(t, fmt.Sprint("reader", m), a)
		}
		var procs [writers]*instProc
		for w := range procs {
			a := base
			a.Role, a.State, a.Writer, a.Seed, a.Ops = "writer", states[w%machines].StatePath(), w, seed, ops
			a.UpdateEvery, a.MaxMulti, a.Keys, a.Threads = 7, 6, slices.Concat(shared, own[w]), threads
			procs[w] = startInstProc(t, fmt.Sprint("writer", w), a)
		}
		var acks []instAck
		for _, p := range procs {
			p.wait(t)
			acks = append(acks, parseInstAcks(t, p.protocol())...)
		}
		if len(acks) != writers*threads*ops {
			t.Fatalf("%d acks, want %d", len(acks), writers*threads*ops)
		}
		for _, p := range readers {
			p.wait(t)
		}
		for _, c := range states {
			mustUpdate(t, c)
		}
		l := readInstLog(t, store)
		for m, c := range states {
			wantReplay(t, fmt.Sprint("machine ", m), c, l)
		}
		replaced := checkAcks(t, l, acks, ps.replaces)
		ids := instValueIDs(l, acks)
		for m, p := range readers {
			lines := p.protocol()
			obs, unordered := checkMonotonic(t, p.Name, lines, ids)
			if unordered != 0 {
				t.Fatalf("%s: %d observations could not be ordered", p.Name, unordered)
			}
			t.Logf("machine %d: reader %s, %d changes of value checked", m, lines[len(lines)-1], obs)
		}
		t.Logf("%d records in the log (latest id %d), %d keys; %d acked writes (%d replaced by newer single-key records)",
			len(l.ids), l.latest, len(instItems(states[0])), len(acks), replaced)
	})
}

// The concurrent-Update test's writer follows a fixed schedule, so that a
// reader can tell from a state alone which prefix of the schedule it
// holds. Operation j (from 1) is a record of two items on two of the keys
// k00..k15: every fourth operation deletes them, the others set them to
// "vJ" and set "seq" to "J". No record has a single key, so no store drops
// any of them.
const instSeqKeys = 16

// instSeqOp returns the keys operation j writes and whether it deletes.
func instSeqOp(j int) (a, b int, del bool) {
	if j%4 == 0 {
		return j % instSeqKeys, (7*j + 3) % instSeqKeys, true
	}
	return j % instSeqKeys, (5*j + 1) % instSeqKeys, false
}

func instSeqKey(i int) string { return fmt.Sprintf("k%02d", i) }

// instSeqExpected returns the values of seq and k00..k15 ("" for a
// missing key) after operations 1..j.
func instSeqExpected(j int) []string {
	want := make([]string, 1+instSeqKeys)
	done := make([]bool, 1+instSeqKeys)
	for op := j; op >= 1; op-- {
		a, b, del := instSeqOp(op)
		for _, i := range []int{a, b} {
			if !done[1+i] {
				done[1+i] = true
				if !del {
					want[1+i] = fmt.Sprint("v", op)
				}
			}
		}
		if !del && !done[0] {
			done[0] = true
			want[0] = fmt.Sprint(op)
		}
	}
	return want
}

// instRoleSeqWriter runs operations 1..Ops of the schedule and prints
// "ack J ID" for each; it calls Update every UpdateEvery operations.
func instRoleSeqWriter(h *instHelper) error {
	for j := 1; j <= h.args.Ops; j++ {
		a, b, del := instSeqOp(j)
		ka, kb := []byte(instSeqKey(a)), []byte(instSeqKey(b))
		var id uint64
		var err error
		if del {
			id, err = h.c.DeleteMulti(h.ctx, [][]byte{ka, kb})
		} else {
			v := fmt.Appendf(nil, "v%d", j)
			id, err = h.c.SetMulti(h.ctx, []Item{{Key: []byte("seq"), Value: []byte(strconv.Itoa(j))}, {Key: ka, Value: v}, {Key: kb, Value: v}})
		}
		if err != nil {
			return fmt.Errorf("operation %d: %w", j, err)
		}
		h.emit("ack %d %d", j, id)
		if e := h.args.UpdateEvery; e > 0 && j%e == 0 {
			if err := h.c.Update(h.ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// instSeqRead reads seq and k00..k15 twice until both passes agree, which
// makes the pass a state that existed at one instant: a record applied
// between the reads of two keys it changes would also change the second
// pass.
func instSeqRead(c *Instance) ([]string, error) {
	read := func() ([]string, error) {
		out := make([]string, 1+instSeqKeys)
		for i := range out {
			k := "seq"
			if i > 0 {
				k = instSeqKey(i - 1)
			}
			v, err := c.Get([]byte(k))
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			out[i] = string(v)
		}
		return out, nil
	}
	for attempt := 0; attempt < 10000; attempt++ {
		a, err := read()
		if err != nil {
			return nil, err
		}
		b, err := read()
		if err != nil {
			return nil, err
		}
		if slices.Equal(a, b) {
			return a, nil
		}
	}
	return nil, errors.New("no two consecutive reads of the state agreed")
}

// instSeqMatch returns the largest j such that state is the result of
// operations 1..j (a delete of keys already missing changes nothing, so
// several j may match), or an error if it is no prefix of the schedule.
func instSeqMatch(state []string) (int, error) {
	s := 0
	if state[0] != "" {
		n, err := strconv.Atoi(state[0])
		if err != nil {
			return 0, fmt.Errorf("seq holds %q", state[0])
		}
		s = n
	}
	// After the set operation s, only deletes may have followed.
	match := -1
	for j := s; ; j++ {
		if slices.Equal(state, instSeqExpected(j)) {
			match = j
		}
		if _, _, del := instSeqOp(j + 1); !del {
			break
		}
	}
	if match < 0 {
		return 0, fmt.Errorf("state %q is no prefix of the schedule (seq %d)", state, s)
	}
	return match, nil
}

// instRoleUpdater calls Update in a loop until stdin closes. After each
// call it checks that UpdateID did not go back, reads a consistent state
// and checks that it is a prefix of the schedule no shorter than the last
// one it saw. It prints "upd U J" when UpdateID U or the prefix J changed,
// and at the end "updates CALLS MOVED" (calls across which UpdateID moved).
func instRoleUpdater(h *instHelper) error {
	var lastU uint64
	lastJ, calls, moved := 0, 0, 0
	for !h.stopped(nil) {
		before := h.c.UpdateID()
		if err := h.c.Update(h.ctx); err != nil {
			return err
		}
		calls++
		u := h.c.UpdateID()
		if u > before {
			moved++
		}
		state, err := instSeqRead(h.c)
		if err != nil {
			return err
		}
		j, err := instSeqMatch(state)
		if err != nil {
			return fmt.Errorf("after Update %d (UpdateID %d): %w", calls, u, err)
		}
		if u < lastU || j < lastJ {
			return fmt.Errorf("went back from UpdateID %d, operation %d to UpdateID %d, operation %d", lastU, lastJ, u, j)
		}
		if u != lastU || j != lastJ {
			h.emit("upd %d %d", u, j)
		}
		lastU, lastJ = u, j
	}
	h.emit("updates %d %d", calls, moved)
	return nil
}

// TestInstanceConcurrentUpdate runs two processes that call Update in a
// loop on one state file while a third process, on another machine,
// writes the fixed schedule. Every state the updaters read is a whole
// prefix of the schedule (so each record landed once, whole and in
// order), never shorter than before and never behind their UpdateID, and
// the final state equals the replay of the log.
func TestInstanceConcurrentUpdate(t *testing.T) {
	ops := instOps(300, 5000)
	forEachProcStore(t, func(t *testing.T, _ instProcStore, store logstore.Store, base instHelperArgs) {
		c := newInstance(t, store, Options{})
		var updaters [2]*instProc
		for i := range updaters {
			a := base
			a.Role, a.State = "updater", c.StatePath()
			updaters[i] = startInstProc(t, fmt.Sprint("updater", i), a)
		}
		a := base
		a.Role, a.State, a.Ops, a.UpdateEvery = "seqwriter", filepath.Join(t.TempDir(), "writer.state"), ops, 50
		writer := startInstProc(t, "seqwriter", a)
		writer.wait(t)
		for _, p := range updaters {
			p.wait(t)
		}
		mustUpdate(t, c)
		l := readInstLog(t, store)
		if len(l.ids) != ops {
			t.Fatalf("%d records in the log, want %d", len(l.ids), ops)
		}
		wantReplay(t, "updated state", c, l)
		var want []Item
		for i, v := range instSeqExpected(ops) {
			k := "seq"
			if i > 0 {
				k = instSeqKey(i - 1)
			}
			if v != "" {
				want = append(want, Item{Key: []byte(k), Value: []byte(v)})
			}
		}
		sort.Slice(want, func(i, j int) bool { return bytes.Compare(want[i].Key, want[j].Key) < 0 })
		if d := instDiff(instItems(c), want); d != "" {
			t.Fatalf("final state is not the schedule's: %s", d)
		}
		for _, p := range updaters {
			var reads int
			for _, line := range p.protocol() {
				var u uint64
				var j int
				if _, err := fmt.Sscanf(line, "upd %d %d", &u, &j); err != nil {
					continue
				}
				reads++
				// Records 1..n are operations 1..n: the state read
				// after UpdateID u holds every operation up to u.
				if n := sort.Search(len(l.ids), func(i int) bool { return l.ids[i] > u }); j < n {
					t.Fatalf("%s: state at operation %d after UpdateID %d, which is operation %d", p.Name, j, u, n)
				}
			}
			lines := p.protocol()
			t.Logf("%s: %s, %d distinct states checked", p.Name, lines[len(lines)-1], reads)
		}
	})
}
