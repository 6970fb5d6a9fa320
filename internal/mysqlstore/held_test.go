package mysqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

// poller follows a log the way Instance.Update does: it reads
// ReadUpdates(last+1, LatestUpdateID) over and over and never looks back.
// It records what it saw and fails on records out of order.
type poller struct {
	s    logstore.Store
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex // guards the following
	ids      []uint64
	contents [][]byte
	polls    int
	err      error
	tick     chan struct{} // closed and replaced after every poll
}

// startPoller starts a poller on s; it stops at test cleanup.
func startPoller(t *testing.T, s logstore.Store) *poller {
	p := &poller{s: s, stop: make(chan struct{}), done: make(chan struct{}), tick: make(chan struct{})}
	go p.run()
	t.Cleanup(p.halt)
	return p
}

func (p *poller) run() {
	defer close(p.done)
	ctx := context.Background()
	var last uint64
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		latest, err := p.s.LatestUpdateID(ctx)
		if err == nil && latest > last {
			err = p.s.ReadUpdates(ctx, last+1, latest, func(id uint64, c []byte) error {
				p.mu.Lock()
				defer p.mu.Unlock()
				if n := len(p.ids); id <= last || (n > 0 && id <= p.ids[n-1]) {
					return fmt.Errorf("poller: record %d after %d (position %d)", id, p.ids[max(n-1, 0)], last)
				}
				p.ids = append(p.ids, id)
				p.contents = append(p.contents, bytes.Clone(c))
				return nil
			})
			last = latest
		}
		p.mu.Lock()
		if err != nil && p.err == nil {
			p.err = err
		}
		p.polls++
		close(p.tick)
		p.tick = make(chan struct{})
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// halt stops the poller and waits for it.
func (p *poller) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// waitPolls waits until the poller has finished n more polls.
func (p *poller) waitPolls(t *testing.T, n int) {
	t.Helper()
	for range n {
		p.mu.Lock()
		tick, err := p.tick, p.err
		p.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-tick:
		case <-p.done:
			t.Fatalf("poller stopped: %v", p.err)
		case <-time.After(30 * time.Second):
			t.Fatal("poller made no progress in 30 s")
		}
	}
}

// waitSeen waits until the poller has seen id.
func (p *poller) waitSeen(t *testing.T, id uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		seen := len(p.ids) > 0 && p.ids[len(p.ids)-1] >= id
		p.mu.Unlock()
		if seen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("poller did not see record %d in 30 s", id)
		}
		p.waitPolls(t, 1)
	}
}

// seen returns what the poller has seen.
func (p *poller) seen() ([]uint64, [][]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.ids...), append([][]byte(nil), p.contents...), p.err
}

// waitLockWait waits until another session runs the counter UPDATE
// on table_meta while the held transaction (idle, after its own UPDATE)
// keeps the row locked: that session is waiting for the lock. (The
// process list is read rather than INNODB_TRX, which MariaDB fills from a
// cache and may show late.)
func waitLockWait(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		// The commit locks the counter row with its first statement.
		err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? OR INFO LIKE ?",
			"UPDATE `"+table+"_meta` SET next_id%", "SELECT next_id, latest_nonce FROM `"+table+"_meta`%FOR UPDATE").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waiting for the counter of %s after 30 s", table)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tagRecords returns n records tagged tag, without single keys (every
// committed record must reach the poller).
func tagRecords(tag string, n int) []logstore.Record {
	out := make([]logstore.Record, n)
	for i := range out {
		out[i].Contents = []byte(fmt.Sprintf("%s-%d", tag, i))
	}
	return out
}

// TestHeldTransaction holds writer A's transaction open after its
// inserts, before COMMIT, while writer B commits and a poller follows the
// log: B must wait for the counter lock (never commit ahead of A), and the
// poller must see every committed record, in order.
func TestHeldTransaction(t *testing.T) {
	mysqltest.DSN(t) // skip once, not in every subtest
	errRollback := errors.New("test: roll back")
	for _, tc := range []struct {
		name     string
		rollback bool // A rolls back instead of committing
		timeout  bool // B's lock wait times out while A holds
		retries  bool // B retries its timeouts until A is done
	}{
		{name: "A commits"},
		{name: "A rolls back", rollback: true},
		{name: "B times out", timeout: true},
		{name: "B retries timeouts", timeout: true, retries: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sA, adminDB := testStore(t, Options{})
			table := sA.Table()
			hold := make(chan [2]uint64, 1)
			release := make(chan struct{})
			var releaseOnce sync.Once
			releaseA := func() { releaseOnce.Do(func() { close(release) }) }
			sA.hookBeforeCommit = func(_ context.Context, first, last uint64, _ []*commitReq) error {
				hold <- [2]uint64{first, last}
				<-release
				if tc.rollback {
					return errRollback
				}
				return nil
			}
			var bVars []string
			bOpts := Options{}
			if tc.timeout {
				bVars = []string{"innodb_lock_wait_timeout", "1"}
				bOpts = Options{MaxAttempts: 1}
				if tc.retries {
					bOpts = Options{MaxAttempts: 100, RetryBaseDelay: 10 * time.Millisecond, RetryMaxDelay: 20 * time.Millisecond}
				}
			}
			sB := testStoreOn(t, mysqltest.DB(t, bVars...), table, bOpts)
			retried := make(chan error, 1)
			sB.hookRetry = func(_ int, err error) {
				select {
				case retried <- err:
				default:
				}
			}
			poller := startPoller(t, testStoreOn(t, mysqltest.DB(t), table, Options{}))
			t.Cleanup(releaseA) // first: the stores' Close waits for A

			// Something before, so the poller has a position.
			base, err := commitLast(ctx, sB, tagRecords("base", 2))
			if err != nil {
				t.Fatal(err)
			}
			poller.waitSeen(t, base)

			aRecs, bRecs := tagRecords("A", 3), tagRecords("B", 2)
			type result struct {
				id  uint64
				err error
			}
			aDone, bDone := make(chan result, 1), make(chan result, 1)
			go func() { id, err := commitLast(ctx, sA, aRecs); aDone <- result{id, err} }()
			aIDs := <-hold
			if aIDs != [2]uint64{base + 1, base + 3} {
				t.Fatalf("A holds ids %v, want %d..%d", aIDs, base+1, base+3)
			}
			go func() { id, err := commitLast(ctx, sB, bRecs); bDone <- result{id, err} }()
			if !tc.timeout {
				// B waits for the counter lock (for 50 s, the default).
				waitLockWait(t, adminDB, table)
			}
			poller.waitPolls(t, 3)

			switch {
			case tc.timeout && !tc.retries:
				// B gives up with the server's lock wait timeout while A
				// still holds; then commits again after A.
				r := <-bDone
				var me *mysql.MySQLError
				if !errors.As(r.err, &me) || me.Number != erLockWaitTimeout || errors.Is(r.err, ErrCommitUnknown) {
					t.Fatalf("B's Commit while A holds: %d, %v; want lock wait timeout 1205", r.id, r.err)
				}
			case tc.retries:
				if err := <-retried; !retryable(err) {
					t.Fatalf("B retried after %v, want a lock wait timeout", err)
				}
			}
			select {
			case r := <-bDone:
				if !tc.timeout || tc.retries {
					t.Fatalf("B's Commit returned (%d, %v) while A held the counter", r.id, r.err)
				}
			default:
			}
			if ids, _, err := poller.seen(); err != nil || ids[len(ids)-1] != base {
				t.Fatalf("while A holds, the poller saw %v (err %v); want nothing past %d", ids, err, base)
			}

			releaseA()
			ra := <-aDone
			switch {
			case tc.rollback && !errors.Is(ra.err, errRollback):
				t.Fatalf("A's Commit = %d, %v; want the hook's rollback error", ra.id, ra.err)
			case !tc.rollback && (ra.err != nil || ra.id != aIDs[1]):
				t.Fatalf("A's Commit = %d, %v; want %d", ra.id, ra.err, aIDs[1])
			}
			if tc.timeout && !tc.retries {
				go func() { id, err := commitLast(ctx, sB, bRecs); bDone <- result{id, err} }()
			}
			rb := <-bDone
			wantB := aIDs[1] + uint64(len(bRecs))
			if tc.rollback {
				wantB = aIDs[0] + uint64(len(bRecs)) - 1 // A's ids, no gap
			}
			if rb.err != nil || rb.id != wantB {
				t.Fatalf("B's Commit = %d, %v; want %d", rb.id, rb.err, wantB)
			}
			poller.waitSeen(t, rb.id)
			poller.halt()

			var want []logstore.Record
			want = append(want, tagRecords("base", 2)...)
			if !tc.rollback {
				want = append(want, aRecs...)
			}
			want = append(want, bRecs...)
			ids, contents, err := poller.seen()
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != len(want) {
				t.Fatalf("poller saw ids %v, want %d records", ids, len(want))
			}
			for i := range want {
				if ids[i] != uint64(i+1) || !bytes.Equal(contents[i], want[i].Contents) {
					t.Errorf("poller record %d: id %d %q, want id %d %q", i, ids[i], contents[i], i+1, want[i].Contents)
				}
			}
			// The log holds exactly what the poller saw.
			if all, _ := readAll(t, sA, 1, ^uint64(0)); fmt.Sprint(all) != fmt.Sprint(ids) {
				t.Errorf("log holds %v, poller saw %v", all, ids)
			}
		})
	}
}
