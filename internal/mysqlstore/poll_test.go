package mysqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

// TestPollSnapshotAtRate is the poll race as an operator meets it:
// writers in other pools set a few hot keys at about 1,000 sets/s, each
// set REPLACEing the older row of its key, while a poller tails the log
// with Poll. After every complete poll its copy must hold, for every key,
// the value of the newest record at or below the poll's Latest.ID. A
// poll that reads the latest id and the rows in two statements fails
// this: a replacement between the two removes a row the poller still
// needed and puts its successor above the latest id it read.
func TestPollSnapshotAtRate(t *testing.T) {
	const writers, keys, rate = 4, 8, 1000 // sets/s in all
	run := 5 * time.Second
	if testing.Short() {
		run = 2 * time.Second
	}
	s, _ := testStore(t, Options{})
	ctx := context.Background()

	type write struct {
		id       uint64
		key, val string
	}
	var mu sync.Mutex // guards writes
	var writes []write
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		ws := testStoreOn(t, mysqltest.DB(t), s.Table(), Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			tick := time.NewTicker(time.Second * writers / rate)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				key := fmt.Sprintf("hot%d", rng.IntN(keys))
				val := fmt.Sprintf("w%d-%d", w, i)
				c, err := ws.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, key, val), SingleKey: []byte(key)}})
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				mu.Lock()
				writes = append(writes, write{c.Last, key, val})
				mu.Unlock()
			}
		}()
	}

	type seen struct {
		latest uint64
		state  map[string]string
	}
	var polls []seen
	reader := testStoreOn(t, mysqltest.DB(t), s.Table(), Options{})
	state := map[string]string{}
	var pos logstore.Position
	// Run for the planned time, and on a loaded machine (the race detector,
	// other tests) longer, until enough sets raced the polls.
	const minSets = 1000
	start := time.Now()
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(writes) >= minSets || time.Since(start) > 6*run
	}
	for time.Since(start) < run || !enough() {
		var res logstore.PollResult
		for {
			var err error
			res, err = reader.Poll(ctx, logstore.PollRequest{After: pos, Max: 4}, func(e logstore.Entry) error {
				return logstore.DecodeRecord(e.Contents, func(it logstore.Item) error {
					state[string(it.Key)] = string(it.Value)
					return nil
				})
			})
			if err != nil {
				t.Fatalf("Poll after %+v: %v", pos, err)
			}
			if res.Verdict == logstore.VerdictMismatch || res.Verdict == logstore.VerdictAhead {
				t.Fatalf("Poll after %+v: verdict %v on a log that only grows", pos, res.Verdict)
			}
			pos = res.Next
			if !res.More {
				break
			}
		}
		pos = res.Latest
		cp := make(map[string]string, len(state))
		for k, v := range state {
			cp[k] = v
		}
		polls = append(polls, seen{pos.ID, cp})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	sort.Slice(writes, func(i, j int) bool { return writes[i].id < writes[j].id })
	bad, w := 0, 0
	newest := map[string]string{}
	for _, p := range polls { // polls ascend by latest id
		for ; w < len(writes) && writes[w].id <= p.latest; w++ {
			newest[writes[w].key] = writes[w].val
		}
		for k, v := range newest {
			if p.state[k] != v {
				if bad++; bad <= 5 {
					t.Errorf("poll at latest %d holds %s=%q, but the newest record <= %d wrote %q", p.latest, k, p.state[k], p.latest, v)
				}
			}
		}
	}
	t.Logf("%d sets in %v by %d writers, %d polls", len(writes), time.Since(start).Round(time.Millisecond), writers, len(polls))
	if len(writes) < minSets/2 || len(polls) < 100 {
		t.Errorf("only %d sets and %d polls: the test did not run at its rate", len(writes), len(polls))
	}
	if bad > 0 {
		t.Errorf("%d stale keys in %d polls", bad, len(polls))
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// countingConn counts the requests a client sends and the round trips
// they take: a round trip starts with the first write after a read.
type countingConn struct {
	net.Conn
	writes, trips *atomic.Int64
	read          bool // the last operation was a read
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	if c.read {
		c.trips.Add(1)
		c.read = false
	}
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.read = true
	return c.Conn.Read(b)
}

// countingDB returns a one-connection pool on the test server whose
// requests and round trips are counted.
func countingDB(t *testing.T) (db *sql.DB, writes, trips *atomic.Int64) {
	t.Helper()
	cfg, err := mysql.ParseDSN(mysqltest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	var name [8]byte
	for i := range name {
		name[i] = byte(rand.Uint32())
	}
	netName := "whycachecount" + hex.EncodeToString(name[:])
	writes, trips = new(atomic.Int64), new(atomic.Int64)
	network := cfg.Net
	mysql.RegisterDialContext(netName, func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, writes: writes, trips: trips, read: true}, nil
	})
	t.Cleanup(func() { mysql.DeregisterDialContext(netName) })
	cfg.Net = netName
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db = mysqltest.Open(t, c)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, writes, trips
}

func TestPollOneStatement(t *testing.T) {
	// One Poll is one request and one round trip, whatever it delivers and
	// whether it looks up a trace, once its statements are prepared on the
	// connection. Two when the position has no row at or above it below
	// the latest id (a position ahead of the log, or the latest row
	// removed by compaction; then one again at the next poll), or when
	// compaction removed the row at the position and the trace is the
	// mark a second statement reads.
	s, sdb := testStore(t, Options{})
	ctx := context.Background()
	commits := commitPairs(t, s, 5)
	db, writes, trips := countingDB(t)
	p := testStoreOn(t, db, s.Table(), Options{})
	poll := func(after logstore.Position, max int) logstore.PollResult {
		t.Helper()
		res, err := p.Poll(ctx, logstore.PollRequest{After: after, Max: max}, func(logstore.Entry) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Prepare the statements on the connection.
	poll(logstore.Position{}, 0)
	poll(logstore.Position{ID: 1000, Nonce: 1}, 0)
	poll(logstore.Position{}, 0)
	type pollCase struct {
		name  string
		after logstore.Position
		max   int
		want  logstore.Verdict
		stmts int64
	}
	run := func(cases []pollCase) {
		t.Helper()
		for _, tc := range cases {
			w0, t0 := writes.Load(), trips.Load()
			res := poll(tc.after, tc.max)
			w, r := writes.Load()-w0, trips.Load()-t0
			if res.Verdict != tc.want {
				t.Errorf("Poll %s: verdict %v, want %v", tc.name, res.Verdict, tc.want)
			}
			if w != tc.stmts || r != tc.stmts {
				t.Errorf("Poll %s: %d requests in %d round trips, want %d in %d", tc.name, w, r, tc.stmts, tc.stmts)
			}
		}
	}
	run([]pollCase{
		{"everything", logstore.Position{}, 0, logstore.VerdictNone, 1},
		{"a page", logstore.Position{}, 3, logstore.VerdictNone, 1},
		{"with a lookup", commits[1].Position(), 0, logstore.VerdictMatch, 1},
		{"with a lookup that mismatches", logstore.Position{ID: commits[1].Last, Nonce: 1}, 0, logstore.VerdictMismatch, 1},
		{"at the latest", commits[4].Position(), 0, logstore.VerdictMatch, 1},
		{"ahead", logstore.Position{ID: 1000, Nonce: 1}, 0, logstore.VerdictAhead, 2},
		{"ahead, again", logstore.Position{ID: 1000, Nonce: 1}, 0, logstore.VerdictAhead, 1},
		{"from the start after a position ahead", logstore.Position{}, 0, logstore.VerdictNone, 1},
		{"with a lookup after that", commits[1].Position(), 0, logstore.VerdictMatch, 1},
	})
	damage(t, sdb, "DELETE FROM `"+s.Table()+"` WHERE id = ?", commits[1].Last)
	run([]pollCase{
		{"the position's row removed", commits[1].Position(), 0, logstore.VerdictMatch, 2},
		{"the position's row removed, another nonce", logstore.Position{ID: commits[1].Last, Nonce: 1}, 0, logstore.VerdictMismatch, 2},
	})
	damage(t, sdb, "DELETE FROM `"+s.Table()+"` WHERE id = ?", commits[4].Last)
	run([]pollCase{
		{"the latest row removed", commits[4].Position(), 0, logstore.VerdictMatch, 2},
		{"the latest row removed, again", commits[4].Position(), 0, logstore.VerdictMatch, 1},
		{"the latest row removed, another nonce", logstore.Position{ID: commits[4].Last, Nonce: 1}, 0, logstore.VerdictMismatch, 1},
	})
	// For the record: what a commit costs on this pool.
	w0, t0 := writes.Load(), trips.Load()
	if _, err := p.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, "k", "v")}}); err != nil {
		t.Fatal(err)
	}
	w0, t0 = writes.Load(), trips.Load()
	if _, err := p.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, "k", "v")}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("one Commit: %d requests in %d round trips", writes.Load()-w0, trips.Load()-t0)
}

// TestPollRowsAtOrAboveNext: pollJoin bounds the log rows by id <
// next_id in its view; pollFull (the fallback, here for a position ahead
// of the log) reads them without that bound, and the client drops what
// lies at or above next_id. A stray row at or above next_id (none exists
// in a log only stores wrote; here one is put there by hand) must change
// nothing a Poll returns with either statement: not delivered, not
// counted for More. And a position at the latest id is judged by the
// meta row's nonce, not by the row there, even when that row has no
// nonce (written by an earlier version), which would check by id only.
func TestPollRowsAtOrAboveNext(t *testing.T) {
	s, db := testStore(t, Options{})
	ctx := context.Background()
	commits := commitPairs(t, s, 3)
	latest := commits[2].Position()
	for _, id := range []uint64{latest.ID + 1, latest.ID + 4} {
		damage(t, db, "INSERT INTO `"+s.Table()+"` (id, single_key, contents, nonce) VALUES (?, ?, ?, 0)", id, fmt.Sprint("stray", id), recordOf(t, "stray", "v"))
	}
	for _, tc := range []struct {
		name    string
		after   logstore.Position
		max     int
		verdict logstore.Verdict
		ids     []uint64
	}{
		{"everything", logstore.Position{}, 0, logstore.VerdictNone, []uint64{1, 2, 3, 4, 5, 6}},
		{"a page that ends at the latest id", logstore.Position{ID: 2}, 4, logstore.VerdictMatch, []uint64{3, 4, 5, 6}},
		{"with a lookup", commits[0].Position(), 0, logstore.VerdictMatch, []uint64{3, 4, 5, 6}},
		{"at the latest", latest, 0, logstore.VerdictMatch, nil},
		{"at the latest with another nonce", logstore.Position{ID: latest.ID, Nonce: latest.Nonce + 1}, 0, logstore.VerdictMismatch, nil},
		{"ahead, below a stray row (pollFull)", logstore.Position{ID: latest.ID + 2, Nonce: 1}, 0, logstore.VerdictAhead, nil},
	} {
		var ids []uint64
		res, err := s.Poll(ctx, logstore.PollRequest{After: tc.after, Max: tc.max}, func(e logstore.Entry) error {
			ids = append(ids, e.ID)
			return nil
		})
		if err != nil {
			t.Fatalf("Poll %s: %v", tc.name, err)
		}
		if res.Latest != latest || res.Verdict != tc.verdict || res.More || fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
			t.Errorf("Poll %s: latest %v, verdict %v, more %v, ids %v; want %v, %v, false, %v", tc.name, res.Latest, res.Verdict, res.More, ids, latest, tc.verdict, tc.ids)
		}
		if tc.name == "at the latest with another nonce" {
			damage(t, db, "UPDATE `"+s.Table()+"` SET nonce = 0 WHERE id = ?", latest.ID)
			res, err := s.Poll(ctx, logstore.PollRequest{After: tc.after}, func(logstore.Entry) error { return nil })
			if err != nil || res.Verdict != logstore.VerdictMismatch {
				t.Errorf("Poll %s, its row without a nonce: verdict %v, %v; want %v", tc.name, res.Verdict, err, logstore.VerdictMismatch)
			}
		}
	}
}

// commitPairs makes n commits of two records each on s.
func commitPairs(t *testing.T, s *Store, n int) []logstore.Committed {
	t.Helper()
	var commits []logstore.Committed
	for i := range n {
		c, err := s.Commit(context.Background(), logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, fmt.Sprint("k", i), "v")}, {Contents: recordOf(t, "x", "y")}})
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
	}
	return commits
}

func TestPollReadsServerClockOncePerTTL(t *testing.T) {
	// The Poll statement leaves the server's clock out (a statement that
	// reads it is never answered from the query cache). A poll that shows
	// a heartbeat reads the server's clock with a second request, once
	// per serverClockTTL; ReadTime is that reading carried forward.
	s, _ := testStore(t, Options{})
	ctx := context.Background()
	commitPairs(t, s, 2)
	db, writes, _ := countingDB(t)
	p := testStoreOn(t, db, s.Table(), Options{})
	poll := func(name string, want int64) logstore.PollResult {
		t.Helper()
		w0 := writes.Load()
		res, err := p.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if w := writes.Load() - w0; want > 0 && w != want {
			t.Errorf("Poll %s: %d requests, want %d", name, w, want)
		}
		if d := time.Since(res.ReadTime); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("Poll %s: ReadTime %v is %v away from this machine's clock", name, res.ReadTime, d)
		}
		return res
	}
	poll("to prepare the statement", 0)
	poll("without heartbeats", 1)
	if p.primaryClock.Load() != nil {
		t.Fatal("a poll without heartbeats read the server's clock")
	}
	if err := s.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	res := poll("with a heartbeat", 2)
	measured := p.primaryClock.Load()
	if measured == nil {
		t.Fatal("a poll with a heartbeat did not read the server's clock")
	}
	if lag := res.ReadTime.Sub(res.Heartbeat); lag < -time.Second || lag > 2*time.Second {
		t.Errorf("read lag on the primary just after a heartbeat: %v (ReadTime %v, Heartbeat %v)", lag, res.ReadTime, res.Heartbeat)
	}
	poll("with a heartbeat, again", 1)
	if p.primaryClock.Load() != measured {
		t.Error("the clock was read again within serverClockTTL")
	}
	p.primaryClock.Store(&serverClock{server: measured.server, at: measured.at.Add(-serverClockTTL)})
	poll("with a heartbeat, a TTL later", 2)
	if p.primaryClock.Load().at.Before(measured.at) {
		t.Error("the clock was not read again after serverClockTTL")
	}
}
