package whycache

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/internal/testproc"
	"github.com/whycache/whycache/logstore"
)

// The multi-process Instance tests run the test binary again as helper
// processes (testproc). A helper gets its role and parameters as JSON in
// its argument, talks to its parent with lines on stdout that start with
// "@" (other lines are the testing package's own output), and reads
// commands from stdin: a role that loops stops at EOF.

// instHelperArgs configure one helper process.
type instHelperArgs struct {
	Role        string   // writer, reader, seqwriter, updater or crasher
	Dir         string   // file store directory; empty for MySQL
	DSN         string   // MySQL DSN, when Dir is empty
	Table       string   // MySQL table
	State       string   // state file path
	Writer      int      // writer number, the first field of the values written
	Seed        uint64   // seed of the helper's random choices
	Ops         int      // operations to run (writer, seqwriter)
	UpdateEvery int      // call Update every this many operations or passes; 0 never
	Base        int      // first counter (crasher)
	Keys        []string // the keys the role reads or writes
	MaxMulti    int      // most items of one SetMulti or DeleteMulti (writer, crasher)
	Threads     int      // goroutines writing at once (writer); 0 means 1
}

// instHelper is the running helper's side of the harness.
type instHelper struct {
	args  instHelperArgs
	c     *Instance
	outMu sync.Mutex // guards out
	out   *bufio.Writer
	cmds  <-chan string // stdin lines; closed at EOF
	ctx   context.Context
}

// emit writes one protocol line for the parent and flushes it. It is safe
// for concurrent use.
func (h *instHelper) emit(format string, args ...any) {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	fmt.Fprintf(h.out, "@"+format+"\n", args...)
	h.out.Flush()
}

// stopped reports whether the parent closed stdin, and handles a pending
// command with fn (nil to ignore commands).
func (h *instHelper) stopped(fn func(cmd string)) bool {
	select {
	case cmd, ok := <-h.cmds:
		if !ok {
			return true
		}
		if fn != nil {
			fn(cmd)
		}
	default:
	}
	return false
}

// instRoles are the helper roles by name.
var instRoles = map[string]func(h *instHelper) error{
	"writer":    instRoleWriter,
	"reader":    instRoleReader,
	"seqwriter": instRoleSeqWriter,
	"updater":   instRoleUpdater,
	"crasher":   instRoleCrasher,
}

// openStore opens the helper's log store.
func (a instHelperArgs) openStore() (logstore.Store, error) {
	if a.Dir != "" {
		return NewFileStore(a.Dir)
	}
	db, err := sql.Open("mysql", a.DSN)
	if err != nil {
		return nil, err
	}
	s, err := NewMySQLStore(db, a.Table)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &instOwnedDBStore{MySQLStore: s, db: db}, nil
}

// instOwnedDBStore is a MySQLStore that closes its pool with it.
type instOwnedDBStore struct {
	*MySQLStore
	db *sql.DB
}

func (s *instOwnedDBStore) Close() error {
	return errors.Join(s.MySQLStore.Close(), s.db.Close())
}

// TestInstanceHelperProcess is the body of the helper processes; it does
// nothing in a normal run.
func TestInstanceHelperProcess(t *testing.T) {
	raw := testproc.Arg(t)
	var a instHelperArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	role := instRoles[a.Role]
	if role == nil {
		t.Fatalf("unknown helper role %q", a.Role)
	}
	if a.Dir == "" {
		mysqltest.QuietDriver(t)
	}
	store, err := a.openStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c, err := Open(store, Options{StatePath: a.State})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmds := make(chan string, 16)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	h := &instHelper{args: a, c: c, out: bufio.NewWriter(os.Stdout), cmds: cmds, ctx: context.Background()}
	if err := role(h); err != nil {
		t.Fatalf("%s %d: %v", a.Role, a.Writer, err)
	}
}

// instProc is a helper process seen from the parent.
type instProc struct {
	*testproc.Proc
}

// startInstProc starts a helper process; it is killed at cleanup if it
// still runs.
func startInstProc(t *testing.T, name string, a instHelperArgs) *instProc {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return &instProc{testproc.Start(t, name, "TestInstanceHelperProcess", string(raw))}
}

// count returns the number of protocol lines received so far.
func (p *instProc) count() int { return len(p.protocol()) }

// protocol returns the protocol lines received so far, without the "@".
func (p *instProc) protocol() []string {
	var lines []string
	for _, line := range p.Output() {
		if rest, ok := strings.CutPrefix(line, "@"); ok {
			lines = append(lines, rest)
		}
	}
	return lines
}

// await waits for a protocol line at output index from or later with the
// given prefix and returns its index (among every output line: pass it,
// plus one, or Len, as the next from) and text without the "@"; ok is
// false if the process ended without printing one.
func (p *instProc) await(from int, prefix string) (int, string, bool) {
	i, line, ok := p.Await(from, testproc.HasPrefix("@"+prefix))
	return i, strings.TrimPrefix(line, "@"), ok
}

// wait closes the helper's stdin (asking a looping role to stop), waits
// for it to exit and fails the test if it did not exit cleanly.
func (p *instProc) wait(t *testing.T) {
	t.Helper()
	p.CloseStdin()
	if err := p.Wait(); err != nil {
		t.Fatalf("helper %s: %v; output:\n%s", p.Name, err, p.output())
	}
}

// output returns the helper's last non-protocol output lines.
func (p *instProc) output() string {
	var other []string
	for _, line := range p.Output() {
		if !strings.HasPrefix(line, "@") {
			other = append(other, line)
		}
	}
	return strings.Join(other[max(0, len(other)-40):], "\n")
}

// instProcStore is a log store that helper processes can open too.
type instProcStore struct {
	name string
	// open returns a store on a fresh log and the helper arguments that
	// name it; both are cleaned up with the test.
	open func(t *testing.T) (logstore.Store, instHelperArgs)
	// replaces is true for stores that drop a single-key record when a
	// newer single-key record for the same key commits.
	replaces bool
}

// instProcStores are the stores of the multi-process tests: the file
// store, and MySQL when WHYCACHE_TEST_DSN is set (the subtest skips
// otherwise).
func instProcStores() []instProcStore {
	return []instProcStore{
		{name: "file", open: func(t *testing.T) (logstore.Store, instHelperArgs) {
			dir := filepath.Join(t.TempDir(), "log")
			s, err := NewFileStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s, instHelperArgs{Dir: dir}
		}},
		{name: "mysql", replaces: true, open: func(t *testing.T) (logstore.Store, instHelperArgs) {
			dsn := mysqltest.DSN(t)
			s, _ := mysqlTestStore(t, MySQLStoreOptions{})
			return s, instHelperArgs{DSN: dsn, Table: s.Table()}
		}},
	}
}

// forEachProcStore runs fn as a subtest for every store of
// instProcStores, with a store on a fresh log and the helper arguments
// naming it.
func forEachProcStore(t *testing.T, fn func(t *testing.T, ps instProcStore, store logstore.Store, base instHelperArgs)) {
	for _, ps := range instProcStores() {
		t.Run(ps.name, func(t *testing.T) {
			store, base := ps.open(t)
			fn(t, ps, store, base)
		})
	}
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
