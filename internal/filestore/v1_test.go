package filestore

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// v1Fixture copies testdata/v1/log, a log written in segment
// format 1 with a version 1 MANIFEST (three segments, one rewritten by a
// compaction, and a torn frame after the tail's last batch), into a
// temporary directory, and returns it with the records it holds
// (testdata/v1/records.txt).
func v1Fixture(t *testing.T) (string, map[uint64]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	copyDir(t, filepath.Join("testdata", "v1", "log"), dir)
	data, err := os.ReadFile(filepath.Join("testdata", "v1", "records.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		id, c, _ := strings.Cut(line, " ")
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		want[n] = c
	}
	return dir, want
}

// segmentFormats returns the format of every listed segment of s.
func segmentFormats(t *testing.T, s *Store) []segFormat {
	t.Helper()
	m, err := s.manifest()
	if err != nil {
		t.Fatal(err)
	}
	var formats []segFormat
	for _, sg := range m.Segments {
		f, err := os.Open(s.path(sg.Name))
		if err != nil {
			t.Fatal(err)
		}
		var r segReader
		r.reset(f, 0, 0)
		if err := r.readMagic(); err != nil {
			t.Fatal(err)
		}
		formats = append(formats, r.format)
		f.Close()
	}
	return formats
}

func TestReadsFormat1(t *testing.T) {
	// A log written before nonces stays readable (its records have nonce
	// 0); the first commit seals its tail, torn bytes cut, and starts a
	// format-2 segment; a compaction rewrites the old segments in format 2.
	ctx := context.Background()
	dir, want := v1Fixture(t)
	s := testOpen(t, dir, Options{SegmentSize: 300})
	if _, got := readAll(t, s, 1, math.MaxUint64); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("format-1 log reads\n%v\nwant\n%v", got, want)
	}
	const latest = 27
	p := pollCollectAll(t, s, logstore.Position{}, 4)
	if fmt.Sprint(p.records) != fmt.Sprint(want) || p.nonces[0] != len(want) || len(p.nonces) != 1 || p.last.Latest != (logstore.Position{ID: latest}) {
		t.Fatalf("Poll of a format-1 log: %v, nonces %v, latest %+v", p.records, p.nonces, p.last.Latest)
	}
	if res := pollOnce(t, s, logstore.Position{ID: 12}); res.Verdict != logstore.VerdictMatch {
		t.Fatalf("position 12 (nonce 0): verdict %v, want match", res.Verdict)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check of a format-1 log with a torn tail: %v", err)
	}

	c, err := s.Commit(ctx, logstore.LogID{}, makeRecs("v2-a", "v2-b"))
	if err != nil || c.First != latest+1 || c.Nonce == 0 {
		t.Fatalf("first commit on a format-1 log: %+v, %v", c, err)
	}
	if f := segmentFormats(t, s); fmt.Sprint(f) != "[1 1 1 2]" {
		t.Fatalf("segment formats after the first commit: %v, want the format-1 tail sealed and a format-2 one", f)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, manifestName)); !strings.Contains(string(data), `"version": 2`) {
		t.Fatalf("MANIFEST after the first commit:\n%s", data)
	}
	want[c.First], want[c.Last] = "v2-a", "v2-b"
	for _, tc := range []struct {
		after logstore.Position
		want  logstore.Verdict
	}{
		{logstore.Position{ID: 12}, logstore.VerdictMatch},
		{logstore.Position{ID: c.First, Nonce: c.Nonce}, logstore.VerdictMatch},
		{logstore.Position{ID: c.First, Nonce: c.Nonce + 1}, logstore.VerdictMismatch},
	} {
		for _, h := range []*Store{s, testOpen(t, dir, Options{})} {
			if res := pollOnce(t, h, tc.after); res.Verdict != tc.want || res.Latest != c.Position() {
				t.Errorf("Poll after %+v: verdict %v latest %+v, want %v and %+v", tc.after, res.Verdict, res.Latest, tc.want, c.Position())
			}
		}
	}

	keep := func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil }
	if _, err := s.Compact(ctx, math.MaxUint64, 0, keep); err != nil {
		t.Fatal(err)
	}
	for _, f := range segmentFormats(t, s) {
		if f != format2 {
			t.Fatalf("segment formats after Compact: %v", segmentFormats(t, s))
		}
	}
	r := testOpen(t, dir, Options{})
	if _, got := readAll(t, r, 1, math.MaxUint64); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after Compact:\n%v\nwant\n%v", got, want)
	}
	if res := pollOnce(t, r, logstore.Position{ID: 12}); res.Verdict != logstore.VerdictMatch {
		t.Fatalf("position 12 after Compact: verdict %v", res.Verdict)
	}
}

// polled is what pollCollectAll saw.
type polled struct {
	records map[uint64]string
	nonces  map[uint64]int // how many entries had each nonce
	first   logstore.PollResult
	last    logstore.PollResult
	calls   int
}

// pollCollectAll polls from after in pages of max until More is false.
func pollCollectAll(t *testing.T, s logstore.Store, after logstore.Position, max int) polled {
	t.Helper()
	p := polled{records: map[uint64]string{}, nonces: map[uint64]int{}}
	req := logstore.PollRequest{After: after, Max: max}
	for {
		res, err := s.Poll(context.Background(), req, func(e logstore.Entry) error {
			p.records[e.ID] = string(e.Contents)
			p.nonces[e.Nonce]++
			return nil
		})
		if err != nil {
			t.Fatalf("Poll after %+v: %v", req.After, err)
		}
		if p.calls++; p.calls == 1 {
			p.first = res
		}
		p.last = res
		if !res.More {
			return p
		}
		req.After = res.Next
	}
}

// pollOnce polls once after after, discarding the entries.
func pollOnce(t *testing.T, s logstore.Store, after logstore.Position) logstore.PollResult {
	t.Helper()
	res, err := s.Poll(context.Background(), logstore.PollRequest{After: after}, func(logstore.Entry) error { return nil })
	if err != nil {
		t.Fatalf("Poll after %+v: %v", after, err)
	}
	return res
}
