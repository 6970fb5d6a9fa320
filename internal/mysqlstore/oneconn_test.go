package mysqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

// TestOneConnectionNoDeadlock: a store on a pool of one connection (as
// the command line's followers use) never waits for a second one: a
// commit or a Check that finds the meta row gone inside its transaction
// reports ErrNoLog instead of waiting for a connection to look at the
// tables, and concurrent commits (group commit) and polls all finish.
func TestOneConnectionNoDeadlock(t *testing.T) {
	db := mysqltest.DB(t)
	db.SetMaxOpenConns(1)
	table := mysqltest.Table(t, db)
	s := testStoreOn(t, db, table, Options{})
	ctx := context.Background()
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 5 {
				k := fmt.Sprintf("k%d-%d", g, i)
				rec, _ := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte(k), Value: []byte("v")}})
				if _, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: rec, SingleKey: []byte(k)}}); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil }); err != nil {
					errs <- err
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("commits and polls on one connection did not finish in 60 s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if _, err := db.Exec("DELETE FROM `" + table + "_meta`"); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func(context.Context) error{
		"Commit": func(ctx context.Context) error {
			_, err := commitLast(ctx, s, []logstore.Record{{Contents: []byte("WCR")}})
			return err
		},
		"Check":     s.Check,
		"Heartbeat": s.Heartbeat,
		"Poll": func(ctx context.Context) error {
			_, err := s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
			return err
		},
	} {
		// A wait for a second connection ends only with the context
		// (and the reason lookup then fails, still ErrNoLog).
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		err := op(ctx)
		cancel()
		if !errors.Is(err, logstore.ErrNoLog) || time.Since(start) > 4*time.Second {
			t.Errorf("%s without the meta row on one connection: %v after %v; want ErrNoLog at once", name, err, time.Since(start))
		}
	}
}
