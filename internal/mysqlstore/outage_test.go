package mysqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

// trackingConnector records the server's id of every connection it
// opens, so a test can KILL exactly the connections of one pool.
type trackingConnector struct {
	driver.Connector

	mu  sync.Mutex // guards ids
	ids []int64
}

func (c *trackingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	id, err := connectionID(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.mu.Lock()
	c.ids = append(c.ids, id)
	c.mu.Unlock()
	return conn, nil
}

// connectionID asks a fresh driver connection for its CONNECTION_ID().
func connectionID(ctx context.Context, conn driver.Conn) (int64, error) {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return 0, errors.New("driver connection cannot query")
	}
	rows, err := q.QueryContext(ctx, "SELECT CONNECTION_ID()", nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil && err != io.EOF {
		return 0, err
	}
	switch v := dest[0].(type) {
	case int64:
		return v, nil
	case uint64:
		return int64(v), nil
	case []byte:
		var id int64
		_, err := fmt.Sscan(string(v), &id)
		return id, err
	}
	return 0, fmt.Errorf("CONNECTION_ID() returned %T", dest[0])
}

// killAll kills every connection the connector ever opened (those already
// gone report an unknown thread, which is fine) and returns how many it
// tried. It returns when the server has taken every KILL.
func (c *trackingConnector) killAll(admin *sql.DB) int {
	c.mu.Lock()
	ids := append([]int64(nil), c.ids...)
	c.mu.Unlock()
	for _, id := range ids {
		_, _ = admin.Exec("KILL ?", id) // the connection may be gone already
	}
	return len(ids)
}

// outageAttempt is one Commit call of the outage test and its outcome.
type outageAttempt struct {
	recs []logstore.Record
	last uint64
	err  error
}

// TestOutage kills the store's connections while 16 goroutines
// commit: at chosen transactions right before COMMIT (the callers must
// get ErrCommitUnknown, and the transaction is in fact rolled back), and
// at random moments from another goroutine. Commits fail meanwhile and
// succeed afterwards; in the log, nothing is lost, duplicated or partial.
func TestOutage(t *testing.T) {
	const goroutines, perGoroutine = 16, 40
	ctx := context.Background()
	admin := mysqltest.DB(t)
	table := mysqltest.Table(t, admin)
	tracker := &trackingConnector{Connector: mysqltest.Connector(t)}
	db := mysqltest.Open(t, tracker)
	s := testStoreOn(t, db, table, Options{MaxBatchRows: 20})
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}

	// Every 7th transaction loses its connections between its inserts
	// and its COMMIT: it is certainly rolled back.
	var txs atomic.Int64
	var outage atomic.Bool
	outage.Store(true)
	rolledBack := make(map[string]bool) // first record of each call in those transactions
	var rolledBackMu sync.Mutex
	s.hookBeforeCommit = func(_ context.Context, _, _ uint64, batch []*commitReq) error {
		if txs.Add(1)%7 == 0 && outage.Load() {
			rolledBackMu.Lock()
			for _, r := range batch {
				rolledBack[string(r.records[0].Contents)] = true
			}
			rolledBackMu.Unlock()
			tracker.killAll(admin)
		}
		return nil
	}

	attempts := make([][]outageAttempt, goroutines)
	var committed atomic.Int64
	stopKiller := make(chan struct{})
	killerDone := make(chan int)
	go func() {
		// Kill at arbitrary moments too, as long as commits go on.
		kills := 0
		for {
			select {
			case <-stopKiller:
				killerDone <- kills
				return
			default:
			}
			before := committed.Load()
			for committed.Load() < before+25 {
				select {
				case <-stopKiller:
					killerDone <- kills
					return
				default:
				}
				s.LatestUpdateID(ctx) // paces the loop with a server round trip
			}
			tracker.killAll(admin)
			kills++
		}
	}()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perGoroutine {
				recs := tagRecords(fmt.Sprintf("g%d-c%d", g, i), 1+i%3)
				if i%2 == 0 {
					recs[0].SingleKey = recs[0].Contents // unique: replaces nothing
				}
				last, err := commitLast(ctx, s, recs)
				if err == nil {
					committed.Add(1)
				}
				attempts[g] = append(attempts[g], outageAttempt{recs, last, err})
			}
		}()
	}
	wg.Wait()
	close(stopKiller)
	kills := <-killerDone
	outage.Store(false)

	// After the outage, commits succeed.
	var ok []committedCall
	for i := range 5 {
		recs := tagRecords(fmt.Sprintf("after-%d", i), 2)
		last, err := commitLast(ctx, s, recs)
		if err != nil {
			t.Fatalf("Commit after the outage: %v", err)
		}
		ok = append(ok, committedCall{last, recs})
	}

	var unknown, failed []outageAttempt
	for _, as := range attempts {
		for _, a := range as {
			switch {
			case a.err == nil:
				ok = append(ok, committedCall{a.last, a.recs})
			case errors.Is(a.err, ErrCommitUnknown):
				unknown = append(unknown, a)
			default:
				failed = append(failed, a)
			}
		}
	}
	t.Logf("%d commits succeeded, %d failed, %d with unknown outcome; %d transactions, %d random kills",
		len(ok), len(failed), len(unknown), txs.Load(), kills)
	if len(unknown) == 0 {
		t.Fatal("no commit reported an unknown outcome, though connections were killed before COMMIT")
	}

	// Successful commits are in the log at their ids; failed ones are
	// absent; unknown ones are all there, consecutive, or all absent.
	ids, contents := readAll(t, s, 1, ^uint64(0))
	where := make(map[string]uint64, len(ids))
	for i, c := range contents {
		if _, dup := where[string(c)]; dup {
			t.Fatalf("record %q is in the log twice", c)
		}
		where[string(c)] = ids[i]
	}
	accounted := 0
	for _, c := range ok {
		n := uint64(len(c.recs))
		for i, r := range c.recs {
			if id, found := where[string(r.Contents)]; !found || id != c.last-n+1+uint64(i) {
				t.Errorf("committed record %q at id %d (found %v), want %d", r.Contents, id, found, c.last-n+1+uint64(i))
			}
		}
		accounted += len(c.recs)
	}
	for _, a := range failed {
		for _, r := range a.recs {
			if id, found := where[string(r.Contents)]; found {
				t.Errorf("record %q of a failed commit (%v) is in the log at %d", r.Contents, a.err, id)
			}
		}
	}
	for _, a := range unknown {
		first, found := where[string(a.recs[0].Contents)]
		for i, r := range a.recs {
			id, f := where[string(r.Contents)]
			if f != found || (f && id != first+uint64(i)) {
				t.Errorf("commit with unknown outcome (%v) is partly in the log: record %d at %d (found %v)", a.err, i, id, f)
			}
		}
		if found {
			accounted += len(a.recs)
		}
	}
	for c := range rolledBack {
		if id, found := where[c]; found {
			t.Errorf("record %q of a transaction killed before COMMIT is in the log at %d", c, id)
		}
	}
	for _, c := range ok {
		if rolledBack[string(c.recs[0].Contents)] {
			t.Errorf("Commit of %q reported success, but its transaction was killed before COMMIT", c.recs[0].Contents)
		}
	}
	if accounted != len(ids) {
		t.Errorf("log holds %d records, commits account for %d", len(ids), accounted)
	}
}
