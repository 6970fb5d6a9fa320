package filestore

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
)

// BenchmarkCommit measures single-record commits of a 116-byte
// record, with fdatasync, from 1 and 64 goroutines (group commit).
func BenchmarkCommit(b *testing.B) {
	rec := []logstore.Record{{Contents: make([]byte, 116)}}
	for _, goroutines := range []int{1, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			s := testOpen(b, b.TempDir(), Options{})
			ctx := context.Background()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				n := b.N / goroutines
				if g < b.N%goroutines {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						if _, err := commitLast(ctx, s, rec); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// BenchmarkReadUpdates reads 100k single-key records (16-byte
// key, 100-byte value) from the start of the log.
func BenchmarkReadUpdates(b *testing.B) {
	const records = 100_000
	s := testOpen(b, b.TempDir(), Options{NoSync: true})
	ctx := context.Background()
	for i := 0; i < records; i++ { // one record per Commit, as Set writes them
		key := fmt.Appendf(nil, "key-%012d", i)
		c, err := logstore.AppendRecord(nil, []logstore.Item{{Key: key, Value: make([]byte, 100)}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := commitLast(ctx, s, []logstore.Record{{Contents: c, SingleKey: key}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		err := s.ReadUpdates(ctx, 1, math.MaxUint64, func(uint64, []byte) error { n++; return nil })
		if err != nil || n != records {
			b.Fatalf("read %d records: %v", n, err)
		}
	}
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPoll measures a poller's Poll at the end of a log of
// 100k records, from another handle than the writer's: idle (nothing new)
// and after one new single-record commit. ns/op includes the commit in the
// second case; poll-ns is the Poll alone.
func BenchmarkPoll(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	w := testOpen(b, dir, Options{NoSync: true})
	recs := make([]logstore.Record, 1000)
	for i := range recs {
		recs[i].Contents = make([]byte, 116)
	}
	for i := 0; i < 100; i++ {
		if _, err := w.Commit(ctx, logstore.LogID{}, recs); err != nil {
			b.Fatal(err)
		}
	}
	one := recs[:1]
	noop := func(logstore.Entry) error { return nil }
	for _, newBatch := range []bool{false, true} {
		name := "idle"
		if newBatch {
			name = "one-new-batch"
		}
		b.Run(name, func(b *testing.B) {
			r := testOpen(b, dir, Options{})
			res, err := r.Poll(ctx, logstore.PollRequest{}, noop)
			for err == nil && res.More {
				res, err = r.Poll(ctx, logstore.PollRequest{After: res.Next}, noop)
			}
			if err != nil {
				b.Fatal(err)
			}
			pos := res.Latest
			var polling time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if newBatch {
					if _, err := w.Commit(ctx, logstore.LogID{}, one); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				res, err := r.Poll(ctx, logstore.PollRequest{After: pos}, noop)
				polling += time.Since(start)
				if err != nil || res.Verdict != logstore.VerdictMatch {
					b.Fatalf("Poll: %v, verdict %v", err, res.Verdict)
				}
				pos = res.Latest
			}
			b.ReportMetric(float64(polling.Nanoseconds())/float64(b.N), "poll-ns")
		})
	}
}
