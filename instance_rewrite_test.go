package whycache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
)

// awaitAcks waits until the writer processes together printed at least n
// protocol lines (or all of them exited).
func awaitAcks(procs []*instProc, n int) {
	for {
		total, running := 0, false
		for _, p := range procs {
			total += p.count()
			select {
			case <-p.Exited():
			default:
				running = true
			}
		}
		if total >= n || !running {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startLoadWriters starts writer processes on their own state files
// writing random records over keys.
func startLoadWriters(t *testing.T, store logstore.Store, base instHelperArgs, n, ops int, keys []string) []*instProc {
	seed := rand.Uint64()
	t.Logf("writers' seed %d", seed)
	procs := make([]*instProc, n)
	for w := range procs {
		a := base
		a.Role, a.State, a.Writer, a.Seed, a.Ops = "writer", newInstance(t, store, Options{}).StatePath(), w, seed, ops
		a.UpdateEvery, a.MaxMulti, a.Keys = 5, 4, keys
		procs[w] = startInstProc(t, fmt.Sprint("writer", w), a)
	}
	return procs
}

func loadKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key%02d", i)
	}
	return keys
}

// TestInstanceRewriteUnderLoad rewrites the history while two writer
// processes commit, with readers stopped before the rewritten range, inside
// it, after it, and one updating during the rewrite; afterwards every
// reader converges to the replay of the log. With a filter, readers lose
// the filtered keys only if they rebuilt; a fresh reader never has them.
func TestInstanceRewriteUnderLoad(t *testing.T) {
	ops := instOps(120, 1500)
	for _, filter := range []bool{false, true} {
		t.Run(fmt.Sprint("filter=", filter), func(t *testing.T) {
			forEachProcStore(t, func(t *testing.T, ps instProcStore, store logstore.Store, base instHelperArgs) {
				ctx := context.Background()
				w := newInstance(t, store, Options{})
				mustUpdate(t, w)
				for i := 0; i < 20; i++ {
					mustSet(t, w, fmt.Sprintf("tmp/%02d", i), "filtered")
				}
				readers := map[string]*Instance{"before": newInstance(t, store, Options{})}
				mustUpdate(t, readers["before"])
				procs := startLoadWriters(t, store, base, 2, ops, loadKeys(24))
				awaitAcks(procs, ops/2)
				readers["inside"] = newInstance(t, store, Options{})
				mustUpdate(t, readers["inside"])
				awaitAcks(procs, ops)
				limit, err := store.LatestUpdateID(ctx)
				if err != nil {
					t.Fatal(err)
				}
				awaitAcks(procs, ops+ops/4)
				readers["after"] = newInstance(t, store, Options{})
				mustUpdate(t, readers["after"])

				during := newInstance(t, store, Options{})
				readers["during"] = during
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if err := during.Update(ctx); err != nil {
							t.Errorf("Update during the rewrite: %v", err)
							return
						}
					}
				}()
				opts := RewriteOptions{}
				if filter {
					opts.Filter = func(k, _ []byte) bool { return !bytes.HasPrefix(k, []byte("tmp/")) }
				}
				st, err := w.RewriteHistoryStats(ctx, limit, opts)
				close(stop)
				wg.Wait()
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("rewrite to %d: %+v", limit, st)
				for _, p := range procs {
					p.wait(t)
				}
				if filter && st.FilteredKeys != 20 {
					t.Fatalf("filtered %d keys, want 20", st.FilteredKeys)
				}
				if st.RecordsAfter >= st.RecordsBefore {
					t.Fatalf("rewrite removed nothing: %+v", st)
				}
				readers["fresh"] = newInstance(t, store, Options{})
				l := readInstLog(t, store)
				for name, c := range readers {
					mustUpdate(t, c)
					if !filter {
						wantReplay(t, name, c, l)
						continue
					}
					wantReplayExceptFiltered(t, name, c, l, name == "fresh")
				}
			})
		})
	}
}

// wantReplayExceptFiltered is wantReplay for a log whose "tmp/" keys were
// filtered out: the other keys must equal the replay; the tmp keys may
// remain with their value in a state that had them (never in a fresh one).
func wantReplayExceptFiltered(t *testing.T, name string, c *Instance, l *instLog, fresh bool) {
	t.Helper()
	if err := c.Check(); err != nil {
		t.Fatalf("%s: Check: %v", name, err)
	}
	if c.UpdateID() != l.latest {
		t.Fatalf("%s: UpdateID %d, want %d", name, c.UpdateID(), l.latest)
	}
	var got []Item
	for _, it := range instItems(c) {
		if !strings.HasPrefix(string(it.Key), "tmp/") {
			got = append(got, it)
		} else if fresh || string(it.Value) != "filtered" {
			t.Fatalf("%s: filtered key %q=%q present", name, it.Key, it.Value)
		}
	}
	if d := instDiff(got, l.replay(len(l.items))); d != "" {
		t.Fatalf("%s: %s", name, d)
	}
}

// TestInstanceSnapshotUnderLoad exports snapshots while two writer
// processes write through the same state file; each snapshot equals the
// log replayed to its id (for MySQL, keys whose record at that id was
// since replaced by a newer single-key record are exempt), and a state
// loaded from it converges with Update.
func TestInstanceSnapshotUnderLoad(t *testing.T) {
	ops := instOps(150, 2000)
	forEachProcStore(t, func(t *testing.T, ps instProcStore, store logstore.Store, base instHelperArgs) {
		ctx := context.Background()
		p := newInstance(t, store, Options{})
		mustUpdate(t, p)
		seed := rand.Uint64()
		procs := make([]*instProc, 2)
		for w := range procs {
			a := base
			a.Role, a.State, a.Writer, a.Seed, a.Ops = "writer", p.StatePath(), w, seed, ops
			a.UpdateEvery, a.MaxMulti, a.Keys = 9, 4, loadKeys(32)
			procs[w] = startInstProc(t, fmt.Sprint("writer", w), a)
		}
		type snap struct {
			id   uint64
			data []byte
		}
		var snaps []snap
		for i := 1; i <= 6; i++ {
			awaitAcks(procs, i*2*ops/7)
			var buf bytes.Buffer
			id, err := p.WriteSnapshot(&buf)
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, snap{id, buf.Bytes()})
		}
		for _, pr := range procs {
			pr.wait(t)
		}
		l := readInstLog(t, store)
		lastWrite := map[string]uint64{}
		for i, items := range l.items {
			for _, it := range items {
				lastWrite[string(it.Key)] = l.ids[i]
			}
		}
		for i, s := range snaps {
			f := newInstance(t, store, Options{})
			if err := f.LoadSnapshot(ctx, bytes.NewReader(s.data)); err != nil {
				t.Fatal(err)
			}
			if f.UpdateID() != s.id {
				t.Fatalf("snapshot %d: UpdateID %d, want %d", i, f.UpdateID(), s.id)
			}
			n := sort.Search(len(l.ids), func(j int) bool { return l.ids[j] > s.id })
			want := map[string]string{}
			for _, it := range l.replay(n) {
				want[string(it.Key)] = string(it.Value)
			}
			got := contents(f)
			for _, k := range loadKeys(32) {
				gv, gok := got[k]
				wv, wok := want[k]
				if gv == wv && gok == wok {
					continue
				}
				if ps.replaces && lastWrite[k] > s.id {
					continue // its record at s.id was replaced by a newer one
				}
				t.Fatalf("snapshot %d at id %d: key %s = %q (%v), replay gives %q (%v)", i, s.id, k, gv, gok, wv, wok)
			}
			mustUpdate(t, f)
			wantReplay(t, fmt.Sprint("loaded snapshot ", i), f, l)
		}
		t.Logf("%d snapshots at ids %v of %d", len(snaps), func() []uint64 {
			var ids []uint64
			for _, s := range snaps {
				ids = append(ids, s.id)
			}
			return ids
		}(), l.latest)
	})
}
