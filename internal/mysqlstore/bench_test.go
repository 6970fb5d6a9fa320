package mysqlstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
)

// benchRecord returns the encoded single-item record for key i: a
// 16-byte key and a 100-byte value, and the key.
func benchRecord(tb testing.TB, i uint64) (contents, key []byte) {
	key = make([]byte, 16)
	copy(key, "whycache")
	binary.BigEndian.PutUint64(key[8:], i)
	value := bytes.Repeat([]byte{byte(i)}, 100)
	contents, err := logstore.AppendRecord(nil, []logstore.Item{{Key: key, Value: value}})
	if err != nil {
		tb.Fatal(err)
	}
	return contents, key
}

// benchmarkMySQLCommit64 runs b.N single-record, single-key Commits from
// 64 goroutines over 65,536 keys and reports sets/s.
func benchmarkMySQLCommit64(b *testing.B, opts Options) {
	const goroutines, keys = 64, 1 << 16
	s, _ := testStore(b, opts)
	ctx := context.Background()
	if _, err := s.Info(ctx); err != nil {
		b.Fatal(err)
	}
	recs := make([][]byte, keys)
	keyOf := make([][]byte, keys)
	for i := range recs {
		recs[i], keyOf[i] = benchRecord(b, uint64(i))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	b.ResetTimer()
	start := time.Now()
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				k := (i * 40503) % keys // spread over the key space
				if _, err := commitLast(ctx, s, []logstore.Record{{Contents: recs[k], SingleKey: keyOf[k]}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sets/s")
}

// BenchmarkCommit64 measures group commit: 64 goroutines calling
// Commit with one single-key record each (SPEC target: 20,000 sets/s).
func BenchmarkCommit64(b *testing.B) {
	benchmarkMySQLCommit64(b, Options{})
}

// BenchmarkCommit64NoGroup is the baseline: the same load with one
// transaction per Commit call.
func BenchmarkCommit64NoGroup(b *testing.B) {
	benchmarkMySQLCommit64(b, Options{NoGroupCommit: true})
}

// benchLoad fills a fresh log with n single-key records (ids 1..n)
// using large multi-row INSERTs, bypassing Commit.
func benchLoad(b *testing.B, s *Store, n int) {
	const perStmt, perTx = 2000, 50000
	ctx := context.Background()
	insertSQL := func(rows int) string {
		return "INSERT INTO `" + s.Table() + "` (id, single_key, contents) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?),", rows), ",")
	}
	args := make([]any, 0, 3*perStmt)
	for id := 1; id <= n; {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		stmt, err := tx.PrepareContext(ctx, insertSQL(perStmt))
		if err != nil {
			b.Fatal(err)
		}
		for end := min(id+perTx, n+1); id < end; {
			args = args[:0]
			rows := min(perStmt, n+1-id)
			for range rows {
				c, k := benchRecord(b, uint64(id))
				args = append(args, id, k, c)
				id++
			}
			if rows == perStmt {
				_, err = stmt.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, insertSQL(rows), args...)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE `"+s.Table()+"_meta` SET next_id = ? WHERE one = 1", n+1); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReadUpdates measures catch-up reading: ReadUpdates over a
// log of 1,000,000 single-key records of a 16-byte key and a 100-byte
// value (20,000 with -short), reporting records/s.
func BenchmarkReadUpdates(b *testing.B) {
	n := 1000000
	if testing.Short() {
		n = 20000
	}
	s, _ := testStore(b, Options{})
	ctx := context.Background()
	if _, err := s.Info(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	benchLoad(b, s, n)
	b.Logf("loaded %d records in %v", n, time.Since(start).Round(time.Millisecond))
	latest, err := s.LatestUpdateID(ctx)
	if err != nil || latest != uint64(n) {
		b.Fatalf("LatestUpdateID = %d, %v; want %d", latest, err, n)
	}
	b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
		var bytesRead int64
		start := time.Now()
		for range b.N {
			count, last := 0, uint64(0)
			err := s.ReadUpdates(ctx, 1, latest, func(id uint64, c []byte) error {
				count++
				last = id
				bytesRead += int64(len(c))
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if count != n || last != latest {
				b.Fatalf("read %d records up to %d, want %d up to %d", count, last, n, latest)
			}
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(bytesRead)/elapsed.Seconds()/1e6, "MB/s")
	})
}
