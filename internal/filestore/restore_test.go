package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// restoreCopy puts the copy backup of a store directory back at dir, the way
// mode names: "replace" removes dir and copies the backup in its place;
// "overwrite" copies the backup's files over dir's (cp -a backup/. dir/),
// leaving files the backup does not have.
func restoreCopy(t *testing.T, mode, backup, dir string) {
	t.Helper()
	switch mode {
	case "replace":
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		copyDir(t, backup, dir)
	case "overwrite":
		if out, err := exec.Command("cp", "-a", backup+"/.", dir+"/").CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v\n%s", err, out)
		}
	default:
		t.Fatalf("unknown restore mode %q", mode)
	}
}

func TestRestoredCopy(t *testing.T) {
	// An operator copies the store directory with cp -a, more commits
	// follow, and the copy is put back. A reader that applied the lost
	// commits is told (ahead or mismatch, never match), whether it opens
	// the restored log or had it open all along; a writer open across the
	// restore commits into the restored log; a full replay holds the
	// records before the backup and after the restore, not the lost ones.
	ctx := context.Background()
	for _, mode := range []string{"replace", "overwrite"} {
		for _, after := range []int{0, 1, 3, 12} {
			t.Run(fmt.Sprintf("%s, %d commits after", mode, after), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "log")
				opts := Options{SegmentSize: 1 << 20, NoSync: true}
				writer := openRaw(t, dir, opts) // a process running throughout
				reader := openRaw(t, dir, opts) // another one, polling
				want := map[uint64]string{}
				commit := func(tag string, n int) logstore.Committed {
					t.Helper()
					recs := make([]string, n)
					for i := range recs {
						recs[i] = fmt.Sprint(tag, "-", i)
					}
					c, err := writer.Commit(ctx, logstore.LogID{}, makeRecs(recs...))
					if err != nil {
						t.Fatalf("commit %s: %v", tag, err)
					}
					for i, r := range recs {
						want[c.First+uint64(i)] = r
					}
					return c
				}
				for i := 0; i < 5; i++ {
					commit(fmt.Sprint("before", i), 2)
				}
				pollCollectAll(t, reader, logstore.Position{}, 0)
				backup := filepath.Join(t.TempDir(), "backup")
				copyDir(t, dir, backup)
				lost := commit("lost", 3)
				for id := lost.First; id <= lost.Last; id++ {
					delete(want, id)
				}
				if p := pollCollectAll(t, reader, logstore.Position{}, 0); p.last.Latest != lost.Position() {
					t.Fatalf("reader did not apply the lost commit: latest %+v", p.last.Latest)
				}

				restoreCopy(t, mode, backup, dir)
				var last logstore.Committed
				for i := 0; i < after; i++ {
					last = commit(fmt.Sprint("after", i), 1)
				}
				fresh := openRaw(t, dir, Options{})
				for name, s := range map[string]*Store{"reader open across the restore": reader, "reader opened after it": fresh} {
					for _, pos := range []logstore.Position{lost.Position(), {ID: lost.First, Nonce: lost.Nonce}} {
						res := pollOnce(t, s, pos)
						v := res.Verdict
						switch {
						case pos.ID > res.Latest.ID && v != logstore.VerdictAhead:
							t.Errorf("%s at the lost position %+v above the latest %+v: verdict %v, want ahead", name, pos, res.Latest, v)
						case pos.ID <= res.Latest.ID && v != logstore.VerdictMismatch:
							t.Errorf("%s at the lost position %+v, its id reused (latest %+v): verdict %v, want mismatch", name, pos, res.Latest, v)
						}
					}
					p := pollCollectAll(t, s, logstore.Position{}, 3)
					if fmt.Sprint(p.records) != fmt.Sprint(want) {
						t.Errorf("%s replays\n%v\nwant\n%v", name, p.records, want)
					}
					if after > 0 && p.last.Latest != last.Position() {
						t.Errorf("%s: latest %+v, want the last commit %+v", name, p.last.Latest, last.Position())
					}
				}
				if err := fresh.Check(ctx); err != nil {
					t.Errorf("Check of the restored log: %v", err)
				}
			})
		}
	}
}

func TestRestoredCopyBesideNewerSegments(t *testing.T) {
	// A copy put back over a directory in which segments were rolled since
	// leaves the newer segments beside an older MANIFEST: ErrCorrupt for
	// new and open handles, and nothing changes; a copy that replaces the
	// directory is a consistent, older log.
	ctx := context.Background()
	for _, mode := range []string{"overwrite", "replace"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			s := openRaw(t, dir, Options{SegmentSize: 256, NoSync: true})
			for i := 0; i < 10; i++ {
				mustCommit(t, s, fmt.Sprint("before", i))
			}
			backup := filepath.Join(t.TempDir(), "backup")
			copyDir(t, dir, backup)
			for i := 0; i < 20; i++ {
				mustCommit(t, s, fmt.Sprint("lost", i))
			}
			restoreCopy(t, mode, backup, dir)
			if mode == "replace" {
				r := testOpen(t, dir, Options{})
				if latest, err := r.LatestUpdateID(ctx); err != nil || latest != 10 {
					t.Fatalf("restored log: latest %d, %v; want 10", latest, err)
				}
				return
			}
			before := dirFiles(t, dir)
			_, err := Open(dir, Options{})
			wantCorrupt(t, "Open", err, "beyond the MANIFEST")
			_, err = s.Commit(ctx, logstore.LogID{}, makeRecs("x"))
			wantCorrupt(t, "Commit on a store open across the restore", err, "beyond the MANIFEST")
			_, err = s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
			wantCorrupt(t, "Poll on a store open across the restore", err, "beyond the MANIFEST")
			sameFiles(t, dir, before)
		})
	}
}

// TestRestoreUnderIdleHandles: handles that last read the MANIFEST before
// the backup was taken, while segments rolled between (so the restored
// MANIFEST has a higher generation than the one they cached), must notice
// the restore all the same: a reader must not judge the restored tail by
// the replaced WATERMARK, and a writer must write its acknowledged end
// into the restored directory's WATERMARK, so that a byte flipped in its
// acknowledged records is damage to every handle and never a torn tail
// for the next writer to truncate.
func TestRestoreUnderIdleHandles(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "log")
	opts := Options{SegmentSize: 1024, NoSync: true}
	a := openRaw(t, dir, opts)    // a writer running throughout
	idle := openRaw(t, dir, opts) // a reader and writer idle since the start
	commit := func(s *Store, tag string) logstore.Committed {
		t.Helper()
		c, err := s.Commit(ctx, logstore.LogID{}, makeRecs(tag+"-"+string(make([]byte, 40))))
		if err != nil {
			t.Fatalf("commit %s: %v", tag, err)
		}
		return c
	}
	commit(idle, "idle-first") // idle reads the MANIFEST and the WATERMARK now
	if _, err := idle.LatestUpdateID(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		commit(a, fmt.Sprint("a", i)) // segments roll: the generation grows
	}
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, dir, backup)
	for i := 0; i < 5; i++ {
		commit(a, fmt.Sprint("lost", i))
	}
	restoreCopy(t, "replace", backup, dir)
	var acked logstore.Committed
	for i := 0; i < 5; i++ {
		acked = commit(idle, fmt.Sprint("after", i)) // acknowledged by the idle handle
	}
	wm, err := os.ReadFile(filepath.Join(dir, watermarkName))
	if err != nil {
		t.Fatal(err)
	}
	bak, _ := os.ReadFile(filepath.Join(backup, watermarkName))
	if string(wm) == string(bak) {
		t.Fatal("the idle writer's acknowledgements did not reach the restored WATERMARK")
	}
	// Damage a byte of the last acknowledged record.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	tail := segs[len(segs)-1]
	fi, err := os.Stat(tail)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tail, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, fi.Size()-30)
	b[0] ^= 0x5a
	f.WriteAt(b, fi.Size()-30)
	f.Close()
	fresh := openRaw(t, dir, opts)
	if c, err := fresh.Commit(ctx, logstore.LogID{}, makeRecs("x")); !errors.Is(err, logstore.ErrCorrupt) {
		t.Errorf("a new handle committed (%+v, %v) over damaged acknowledged bytes, want ErrCorrupt", c, err)
	}
	// The handles that wrote past the damage may go on appending, but
	// never over the acknowledged records.
	for name, s := range map[string]*Store{"the running writer": a, "the idle handle": idle} {
		if c, err := s.Commit(ctx, logstore.LogID{}, makeRecs("y")); err == nil && c.First <= acked.Last {
			t.Errorf("%s: committed record %d, an id already acknowledged (up to %d)", name, c.First, acked.Last)
		}
	}
	for name, s := range map[string]*Store{"the running writer": a, "the idle handle": idle, "a new handle": fresh} {
		if err := s.Check(ctx); !errors.Is(err, logstore.ErrCorrupt) {
			t.Errorf("%s: Check after the damage: %v, want ErrCorrupt", name, err)
		}
		if _, err := s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil }); !errors.Is(err, logstore.ErrCorrupt) {
			t.Errorf("%s: Poll after the damage: %v, want ErrCorrupt", name, err)
		}
	}
}
