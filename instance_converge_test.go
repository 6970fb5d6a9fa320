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

// instTorture reports whether the long variants run (WHYCACHE_TORTURE=1).
func instTorture() bool { return os.Getenv("WHYCACHE_TORTURE") == "1" }

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

// instLog is a whole log as the parent reads it after a run.
type instLog struct {
	ids    []uint64
	items  [][]logstore.Item
	byID   map[uint64]int
	latest uint64
}

// readInstLog reads and decodes every record of s.
func readInstLog(t *testing.T, s logstore.Store) *instLog {
	t.Helper()
	ctx := context.Background()
	latest, err := s.LatestUpdateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := &instLog{byID: map[uint64]int{}, latest: latest}
	err = s.ReadUpdates(ctx, 1, latest, func(id uint64, contents []byte) error {
		var items []logstore.Item
		err := logstore.DecodeRecord(contents, func(it logstore.Item) error {
			items = append(items, logstore.Item{Key: bytes.Clone(it.Key), Value: bytes.Clone(it.Value), Delete: it.Delete})
			return nil
		})
		if err != nil {
			return fmt.Errorf("record %d: %w", id, err)
		}
		if n := len(l.ids); n > 0 && id <= l.ids[n-1] {
			return fmt.Errorf("record %d read after %d", id, l.ids[n-1])
		}
		l.byID[id] = len(l.ids)
		l.ids = append(l.ids, id)
		l.items = append(l.items, items)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// replay returns the key/value pairs that applying records [0, n) in order
// to an empty state gives, in key order.
func (l *instLog) replay(n int) []Item {
	m := map[string][]byte{}
	for _, items := range l.items[:n] {
		for _, it := range items {
			if it.Delete {
				delete(m, string(it.Key))
			} else {
				m[string(it.Key)] = it.Value
			}
		}
	}
	out := make([]Item, 0, len(m))
	for k, v := range m {
		out = append(out, Item{Key: []byte(k), Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

// instItems returns the instance's keys and values in iteration order.
func instItems(c *Instance) []Item {
	var out []Item
	for k, v := range c.All() {
		out = append(out, Item{Key: k, Value: v})
	}
	return out
}

// instDiff describes the first difference between two item lists, or
// returns "" when they are equal.
func instDiff(got, want []Item) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return fmt.Sprintf("%d items, want %d: missing %q", len(got), len(want), want[i].Key)
		case i >= len(want):
			return fmt.Sprintf("%d items, want %d: extra %q", len(got), len(want), got[i].Key)
		case !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value):
			return fmt.Sprintf("item %d is %q=%q, want %q=%q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
	return ""
}

// wantReplay fails the test unless c's state passes Check, is valid, has
// applied the whole log and holds exactly what replaying it gives, in
// iteration order.
func wantReplay(t *testing.T, name string, c *Instance, l *instLog) {
	t.Helper()
	if err := c.Check(); err != nil {
		t.Fatalf("%s: Check: %v", name, err)
	}
	if !c.Valid() {
		t.Fatalf("%s: state not valid", name)
	}
	if got := c.UpdateID(); got != l.latest {
		t.Fatalf("%s: UpdateID %d, want the latest id %d", name, got, l.latest)
	}
	want := l.replay(len(l.items))
	if d := instDiff(instItems(c), want); d != "" {
		t.Fatalf("%s: state differs from the replay of %d records: %s", name, len(l.ids), d)
	}
}

// checkAcks fails the test unless every acknowledged write is in the log
// with its keys and values, or (with replaces) was a single-key record
// that a newer single-key record for the same key replaced.
func checkAcks(t *testing.T, l *instLog, acks []instAck, replaces bool) (replaced int) {
	t.Helper()
	lastSingle := map[string]uint64{}
	for i, items := range l.items {
		if len(items) == 1 {
			lastSingle[string(items[0].Key)] = l.ids[i]
		}
	}
	for _, a := range acks {
		i, ok := l.byID[a.id]
		if !ok {
			if replaces && len(a.keys) == 1 && lastSingle[a.keys[0]] > a.id {
				replaced++
				continue
			}
			t.Fatalf("%v: record %d is not in the log", a, a.id)
		}
		items := l.items[i]
		if len(items) != len(a.keys) {
			t.Fatalf("%v: record %d holds %d items", a, a.id, len(items))
		}
		prefix := fmt.Sprintf("%d.%d.", a.writer, a.counter)
		for j, it := range items {
			if string(it.Key) != a.keys[j] || it.Delete != a.del || !a.del && !strings.HasPrefix(string(it.Value), prefix) {
				t.Fatalf("%v: record %d item %d is %q=%q (delete %v)", a, a.id, j, it.Key, it.Value, it.Delete)
			}
		}
	}
	return replaced
}

// instValueIDs maps each (writer, counter) to the id of the record that
// wrote it, from the acks and the log.
func instValueIDs(l *instLog, acks []instAck) map[[2]int]uint64 {
	ids := map[[2]int]uint64{}
	for _, a := range acks {
		if !a.del {
			ids[[2]int{a.writer, a.counter}] = a.id
		}
	}
	for i, items := range l.items {
		for _, it := range items {
			if w, c, ok := parseInstValue(it.Value); ok && !it.Delete {
				ids[[2]int{w, c}] = l.ids[i]
			}
		}
	}
	return ids
}

// checkMonotonic fails the test if a reader's observations ("obs K W C",
// "gone K") show a key going back to the value of an older record: per
// key, the ids of the records of successive values never decrease, and
// after the key was seen missing the next value comes from a newer record
// than the last one seen. Values whose record is unknown (a write that
// failed with an unknown outcome and was then replaced) are ordered by
// counter against values of the same writer; unordered counts the pairs
// that could not be ordered at all.
func checkMonotonic(t *testing.T, name string, lines []string, ids map[[2]int]uint64) (observed, unordered int) {
	t.Helper()
	type seen struct {
		w, c int
		id   uint64 // 0 if unknown
		gone bool
	}
	last := map[string]*seen{}
	for _, l := range lines {
		if k, ok := strings.CutPrefix(l, "gone "); ok {
			if s := last[k]; s != nil {
				s.gone = true
			}
			continue
		}
		var k string
		var w, c int
		if _, err := fmt.Sscanf(l, "obs %s %d %d", &k, &w, &c); err != nil {
			continue
		}
		observed++
		cur := &seen{w: w, c: c, id: ids[[2]int{w, c}]}
		prev := last[k]
		last[k] = cur
		if prev == nil {
			continue
		}
		var older, same bool
		switch {
		case prev.id != 0 && cur.id != 0:
			older, same = cur.id < prev.id, cur.id == prev.id
		case prev.w == cur.w:
			older, same = cur.c < prev.c, cur.c == prev.c
		default:
			unordered++
			continue
		}
		if older || same && prev.gone {
			t.Fatalf("%s: key %s went from the value of %d.%d (record %d, then missing: %v) to the older %d.%d (record %d)",
				name, k, prev.w, prev.c, prev.id, prev.gone, cur.w, cur.c, cur.id)
		}
	}
	return observed, unordered
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
	ops := 100
	if instTorture() {
		ops = 2000
	}
	for _, ps := range instProcStores() {
		t.Run(ps.name, func(t *testing.T) {
			store, base := ps.open(t)
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
				obs, unordered := checkMonotonic(t, p.name, lines, ids)
				if unordered != 0 {
					t.Fatalf("%s: %d observations could not be ordered", p.name, unordered)
				}
				t.Logf("machine %d: reader %s, %d changes of value checked", m, lines[len(lines)-1], obs)
			}
			t.Logf("%d records in the log (latest id %d), %d keys; %d acked writes (%d replaced by newer single-key records)",
				len(l.ids), l.latest, len(instItems(states[0])), len(acks), replaced)
		})
	}
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
			id, err = h.c.SetMulti(h.ctx, []Item{{[]byte("seq"), []byte(strconv.Itoa(j))}, {ka, v}, {kb, v}})
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
	ops := 300
	if instTorture() {
		ops = 5000
	}
	for _, ps := range instProcStores() {
		t.Run(ps.name, func(t *testing.T) {
			store, base := ps.open(t)
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
						t.Fatalf("%s: state at operation %d after UpdateID %d, which is operation %d", p.name, j, u, n)
					}
				}
				lines := p.protocol()
				t.Logf("%s: %s, %d distinct states checked", p.name, lines[len(lines)-1], reads)
			}
		})
	}
}
