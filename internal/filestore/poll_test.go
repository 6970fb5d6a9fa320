package filestore

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
)

func TestPollPositions(t *testing.T) {
	// Poll at every position of a log of several segments, some records
	// compacted away (batch ends among them, marks left above the
	// horizon), with the right nonce, another one and none: the verdict is
	// logstore.Judge's on a model of the log, the entries are the records
	// above the position, whether the handle remembers positions or not
	// and whatever the page size.
	ctx := context.Background()
	dir := t.TempDir()
	s := testOpen(t, dir, Options{SegmentSize: 300, NoSync: true})
	type commit struct{ first, last, nonce uint64 }
	var commits []commit
	records := map[uint64]string{}
	for i := 0; i < 24; i++ {
		n := i%3 + 1
		recs := make([]string, n)
		for j := range recs {
			recs[j] = fmt.Sprintf("c%d-%d", i, j)
		}
		c, err := s.Commit(ctx, logstore.LogID{}, makeRecs(recs...))
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, commit{c.First, c.Last, c.Nonce})
		for j, r := range recs {
			records[c.First+uint64(j)] = r
		}
	}
	latestID := commits[len(commits)-1].last
	const horizon = 12
	drop := func(id uint64) bool { return id%4 == 0 && id < latestID-3 }
	_, err := s.Compact(ctx, latestID, horizon, func(id uint64, c []byte) ([]byte, bool, error) { return c, !drop(id), nil })
	if err != nil {
		t.Fatal(err)
	}
	// The model: kept records and marks, by id, with their nonces.
	traces := map[uint64]uint64{}
	nonceOf := map[uint64]uint64{}
	for _, c := range commits {
		for id := c.first; id <= c.last; id++ {
			nonceOf[id] = c.nonce
			if drop(id) {
				delete(records, id)
			} else {
				traces[id] = c.nonce
			}
		}
		if drop(c.last) && c.last >= horizon {
			traces[c.last] = c.nonce // a mark
		}
	}
	var traceIDs []uint64
	for id := range traces {
		traceIDs = append(traceIDs, id)
	}
	sort.Slice(traceIDs, func(i, j int) bool { return traceIDs[i] < traceIDs[j] })
	latest := logstore.Position{ID: latestID, Nonce: commits[len(commits)-1].nonce}
	judge := func(after logstore.Position) logstore.Verdict {
		for _, id := range traceIDs {
			if id >= after.ID {
				return logstore.Judge(after, latest, horizon, true, traces[id])
			}
		}
		return logstore.Judge(after, latest, horizon, false, 0)
	}
	wantAbove := func(id uint64) string {
		out := map[uint64]string{}
		for k, v := range records {
			if k > id {
				out[k] = v
			}
		}
		return fmt.Sprint(out)
	}
	warm := testOpen(t, dir, Options{})
	for id := uint64(0); id <= latestID+1; id++ {
		for _, nonce := range []uint64{nonceOf[id], nonceOf[id] ^ 0x77, 0} {
			after := logstore.Position{ID: id, Nonce: nonce}
			if id == 0 && nonce != 0 {
				continue
			}
			for _, max := range []int{0, 2} {
				fresh, err := Open(dir, Options{})
				if err != nil {
					t.Fatal(err)
				}
				for name, h := range map[string]*Store{"fresh": fresh, "warm": warm} {
					first := pollOnce(t, h, after)
					p := pollCollectAll(t, h, after, max)
					if want := judge(after); first.Verdict != want || p.first.Verdict != want {
						t.Errorf("%s handle, Max %d, after %+v: verdicts %v then %v, want %v", name, max, after, first.Verdict, p.first.Verdict, want)
					}
					if p.last.Latest != latest {
						t.Errorf("%s handle, after %+v: latest %+v, want %+v", name, after, p.last.Latest, latest)
					}
					if id <= latestID && fmt.Sprint(p.records) != wantAbove(id) {
						t.Errorf("%s handle, Max %d, after %+v: entries\n%v\nwant\n%v", name, max, after, p.records, wantAbove(id))
					}
				}
				fresh.Close()
			}
		}
	}
	if res := pollOnce(t, s, logstore.Position{}); time.Since(res.LatestTime) > time.Minute || res.LatestTime.After(time.Now()) {
		t.Errorf("LatestTime %v, want the time of the last commit", res.LatestTime)
	}
	if m, _ := s.manifest(); len(m.Segments) < 4 {
		t.Errorf("the log has %d segments, want several", len(m.Segments))
	}
}

func TestPollerUsualPath(t *testing.T) {
	// A poller that takes Latest as its position: each call delivers the
	// new records and judges the position from what it remembers, across
	// segment rolls, with the writer in another handle.
	ctx := context.Background()
	dir := t.TempDir()
	w := testOpen(t, dir, Options{SegmentSize: 256, NoSync: true})
	r := testOpen(t, dir, Options{})
	var pos logstore.Position
	for i := 0; i < 60; i++ {
		c, err := w.Commit(ctx, logstore.LogID{}, makeRecs(fmt.Sprint("a", i), fmt.Sprint("b", i)))
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		res, err := r.Poll(ctx, logstore.PollRequest{After: pos}, func(e logstore.Entry) error {
			if e.Nonce != c.Nonce {
				t.Errorf("entry %d: nonce %x, want %x", e.ID, e.Nonce, c.Nonce)
			}
			got = append(got, e.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		wantVerdict := logstore.VerdictMatch
		if i == 0 {
			wantVerdict = logstore.VerdictNone
		}
		if res.Verdict != wantVerdict || res.Latest != c.Position() || fmt.Sprint(got) != fmt.Sprint([]uint64{c.First, c.Last}) || res.More {
			t.Fatalf("poll %d: %+v, entries %v; want latest %+v", i, res, got, c.Position())
		}
		if res.LatestTime.IsZero() {
			t.Errorf("poll %d: LatestTime unknown", i)
		}
		pos = res.Latest
	}
}
