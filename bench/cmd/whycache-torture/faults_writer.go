package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/proc"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Child roles of the faults scenario.
const (
	// roleFaultWriter writes like roleWriter but survives errors (it counts
	// them by kind), remembers what was acknowledged, and obeys the
	// parent's commands between operations (faultCmd).
	roleFaultWriter = "fault-writer"
	// roleHolder opens a batch on a state file and holds it until told to
	// let go (see runHolder).
	roleHolder = "holder"
)

// faultOpTimeout bounds each operation of a fault writer: waits for a lock
// held by a stopped process end with the context's error instead of
// hanging.
const faultOpTimeout = 5 * time.Second

// faultCmd is a command from the parent to a fault writer. It is acted on
// between two operations.
type faultCmd struct {
	// Cmd is one of:
	//   - "pause": stop writing and reply "paused" with a report (the
	//     acknowledgements since the last report included);
	//   - "resume": go on writing (no reply);
	//   - "epoch": reply "epoch" with a report and go on writing: the
	//     operations after the reply started after the command;
	//   - "digest": reply "digest" with a digest of the state as this
	//     process reads it (meant for a paused writer);
	//   - "stop": reply "done" with a report and exit (as does the end of
	//     stdin).
	Cmd string `json:"cmd"`
}

// faultAck is an acknowledged write of one key: the log must hold it, at
// record ID, unless a later record (higher id) wrote the key again.
type faultAck struct {
	ID   uint64 `json:"id"`
	Key  string `json:"k"`
	Hash uint64 `json:"h,omitempty"` // valueHash of the value set
	Del  bool   `json:"d,omitempty"`
}

// faultReport is what a fault writer sends: "ready" once it has opened
// the log and the state, a report on "pause", "epoch" and when its stdin
// closes ("done"), and a digest on "digest". Counts are those since the
// previous report.
type faultReport struct {
	Event   string `json:"event"`
	Ops     uint64 `json:"ops,omitempty"`
	Items   uint64 `json:"items,omitempty"`
	Updates uint64 `json:"updates,omitempty"`
	// Rebuilds counts the Updates that rebuilt the state, by errKind of
	// UpdateStats.Rebuilt.
	Rebuilds map[string]int `json:"rebuilds,omitempty"`
	// Errors counts the failed operations by errKind, and Samples holds
	// the first message of each kind.
	Errors  map[string]int    `json:"errors,omitempty"`
	Samples map[string]string `json:"samples,omitempty"`
	// Acks holds, for every key written and acknowledged since the last
	// report, the last such write.
	Acks []faultAck `json:"acks,omitempty"`

	// Digest (event "digest").
	Valid    bool   `json:"valid,omitempty"`
	UpdateID uint64 `json:"update_id,omitempty"`
	Keys     int    `json:"keys,omitempty"`
	Sum      uint64 `json:"sum,omitempty"`
}

// faultWriterState is a fault writer's counts and acknowledgements since
// its last report.
type faultWriterState struct {
	rep  faultReport
	acks map[string]faultAck
}

func (s *faultWriterState) fail(err error) {
	kind := errKind(err)
	if s.rep.Errors == nil {
		s.rep.Errors, s.rep.Samples = map[string]int{}, map[string]string{}
	}
	if s.rep.Errors[kind]++; s.rep.Errors[kind] == 1 {
		s.rep.Samples[kind] = err.Error()
	}
}

func (s *faultWriterState) rebuilt(cause error) {
	if s.rep.Rebuilds == nil {
		s.rep.Rebuilds = map[string]int{}
	}
	s.rep.Rebuilds[errKind(cause)]++
}

// take returns the report of event and starts counting afresh.
func (s *faultWriterState) take(event string) faultReport {
	rep := s.rep
	rep.Event = event
	for _, a := range s.acks {
		rep.Acks = append(rep.Acks, a)
	}
	sort.Slice(rep.Acks, func(i, j int) bool { return rep.Acks[i].Key < rep.Acks[j].Key })
	s.rep, s.acks = faultReport{}, map[string]faultAck{}
	return rep
}

// runFaultWriter is a fault writer child: random Sets, SetMultis, Deletes,
// DeleteMultis and Updates (UpdateStats) on cfg.keys keys, each bounded by
// faultOpTimeout, until its stdin closes. Failed operations are counted,
// not fatal: the parent judges them. Only a broken pipe to the parent, or
// a log or state it cannot open, ends it early.
func runFaultWriter(cfg config, stdin io.Reader, stdout io.Writer) error {
	store, closeStore, err := cfg.childLog().open()
	if err != nil {
		return err
	}
	defer closeStore()
	inst, err := whycache.Open(store, whycache.Options{StatePath: cfg.state})
	if err != nil {
		return err
	}
	defer inst.Close()
	conn := proc.NewConn(stdin, stdout)
	if err := conn.Send(faultReport{Event: "ready"}); err != nil {
		return err
	}
	cmds := make(chan faultCmd)
	go func() {
		defer close(cmds) // EOF (or a broken line) means stop
		for {
			var c faultCmd
			if conn.Recv(&c) != nil {
				return
			}
			cmds <- c
		}
	}()
	w := &writer{inst: inst, rng: rand.New(rand.NewPCG(cfg.seed, ^cfg.seed)), keys: cfg.keys}
	st := &faultWriterState{acks: map[string]faultAck{}}
	paused := false
	for {
		var cmd faultCmd
		var ok, got bool
		if paused {
			cmd, ok = <-cmds
			got = true
		} else {
			select {
			case cmd, ok = <-cmds:
				got = true
			default:
			}
		}
		if got {
			if !ok {
				return conn.Send(st.take("done"))
			}
			var err error
			switch cmd.Cmd {
			case "pause":
				paused = true
				err = conn.Send(st.take("paused"))
			case "resume":
				paused = false
			case "stop":
				return conn.Send(st.take("done"))
			case "epoch":
				err = conn.Send(st.take("epoch"))
			case "digest":
				keys, sum := stateDigest(inst.All())
				err = conn.Send(faultReport{Event: "digest", Valid: inst.Valid(), UpdateID: inst.UpdateID(), Keys: keys, Sum: sum})
			default:
				err = fmt.Errorf("whycache-torture: fault writer: unknown command %q", cmd.Cmd)
			}
			if err != nil {
				return err
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), faultOpTimeout)
		if w.rng.IntN(cfg.updateEvery) == 0 {
			us, err := inst.UpdateStats(ctx)
			st.rep.Updates++
			if err != nil {
				st.fail(err)
			} else if us.Rebuilt != nil {
				st.rebuilt(us.Rebuilt)
			}
		} else {
			id, items, err := faultStep(ctx, w)
			st.rep.Items += uint64(len(items))
			if err != nil {
				st.fail(err)
			}
			if id != 0 { // committed (Set may fail after its commit: the next Update applies it)
				for _, a := range items {
					a.ID = id
					st.acks[a.Key] = a
				}
			}
		}
		cancel()
		st.rep.Ops++
	}
}

// faultStep does one random write like writer.step and returns the id it
// committed (0 if none) and the items, the last of each key. Every
// operation fits in one record (at most 40 items of at most 306 bytes,
// far below MaxUpdateSize), so id is each item's record.
func faultStep(ctx context.Context, w *writer) (uint64, []faultAck, error) {
	var items []faultAck
	switch p := w.rng.IntN(100); {
	case p < 50:
		k, v := w.key(), w.value()
		id, err := w.inst.Set(ctx, k, v)
		return id, append(items, faultAck{Key: string(k), Hash: valueHash(v)}), err
	case p < 80:
		batch := make([]whycache.Item, 2+w.rng.IntN(40))
		last := map[string]int{}
		for i := range batch {
			batch[i] = whycache.Item{Key: w.key(), Value: w.value()}
			last[string(batch[i].Key)] = i
		}
		for i, it := range batch {
			if last[string(it.Key)] == i {
				items = append(items, faultAck{Key: string(it.Key), Hash: valueHash(it.Value)})
			}
		}
		id, err := w.inst.SetMulti(ctx, batch)
		return id, items, err
	case p < 92:
		k := w.key()
		id, err := w.inst.Delete(ctx, k)
		return id, append(items, faultAck{Key: string(k), Del: true}), err
	default:
		keys := make([][]byte, 2+w.rng.IntN(10))
		seen := map[string]bool{}
		for i := range keys {
			keys[i] = w.key()
			if !seen[string(keys[i])] {
				seen[string(keys[i])] = true
				items = append(items, faultAck{Key: string(keys[i]), Del: true})
			}
		}
		id, err := w.inst.DeleteMulti(ctx, keys)
		return id, items, err
	}
}

// runHolder is a child that opens a batch on the state file cfg.state and
// changes a key in it, so that readers must wait for the batch; it says
// "holding", waits for its stdin to close, then rolls the batch back
// (nothing it did stays) and says "released".
func runHolder(cfg config, stdin io.Reader, stdout io.Writer) error {
	t, err := prefixtree.Open(cfg.state, prefixtree.Options{NoCreate: true})
	if err != nil {
		return err
	}
	defer t.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := t.BeginContext(ctx)
	if err != nil {
		return err
	}
	if _, err := b.Put([]byte("k00000"), []byte("from the holder"), 1<<62); err != nil {
		b.Rollback()
		return err
	}
	conn := proc.NewConn(stdin, stdout)
	if err := conn.Send(faultReport{Event: "holding"}); err != nil {
		b.Rollback()
		return err
	}
	var ignored faultCmd
	conn.Recv(&ignored) // EOF (or anything) means let go
	if err := b.Rollback(); err != nil {
		return err
	}
	return conn.Send(faultReport{Event: "released"})
}

// errKind names the sentinel err wraps, for counting errors by kind; an
// error that wraps none of them is "other".
func errKind(err error) string {
	switch {
	case errors.Is(err, whycache.ErrWriterStuck):
		return "writer-stuck"
	case errors.Is(err, whycache.ErrSnapshotBehind):
		return "snapshot-behind"
	case errors.Is(err, whycache.ErrLogMismatch):
		return "log-mismatch"
	case errors.Is(err, whycache.ErrLogDiverged):
		return "log-diverged"
	case errors.Is(err, whycache.ErrHistoryCompacted):
		return "history-compacted"
	case errors.Is(err, whycache.ErrRebuildNeeded):
		return "rebuild-needed"
	case errors.Is(err, whycache.ErrCorrupt), errors.Is(err, logstore.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, logstore.ErrNoLog):
		return "no-log"
	case errors.Is(err, whycache.ErrCommitUnknown):
		return "commit-unknown"
	case errors.Is(err, whycache.ErrInvalidState):
		return "invalid-state"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, os.ErrNotExist):
		return "not-exist"
	}
	return "other"
}

// valueHash is the hash of a value that acknowledgements carry.
func valueHash(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	return h.Sum64()
}

// stateDigest returns the number of keys of a key/value sequence in
// ascending key order and a hash of all of it.
func stateDigest(all iter.Seq2[[]byte, []byte]) (keys int, sum uint64) {
	h := fnv.New64a()
	var n [8]byte
	for k, v := range all {
		keys++
		for _, b := range [][]byte{k, v} {
			for i := range n {
				n[i] = byte(len(b) >> (8 * i))
			}
			h.Write(n[:])
			h.Write(b)
		}
	}
	return keys, h.Sum64()
}

// modelDigest is stateDigest of a replayed key/value map.
func modelDigest(model map[string][]byte) (keys int, sum uint64) {
	sorted := make([]string, 0, len(model))
	for k := range model {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	return stateDigest(func(yield func([]byte, []byte) bool) {
		for _, k := range sorted {
			if !yield([]byte(k), model[k]) {
				return
			}
		}
	})
}
