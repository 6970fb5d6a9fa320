package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// logHistory is a replay of the whole log: the key/value map it gives and
// every write of every key.
type logHistory struct {
	latest uint64
	model  map[string][]byte
	// writes holds each key's writes in id order (the last of a record's
	// items for the key).
	writes map[string][]keyWrite
}

// keyWrite is a write of a key by a record.
type keyWrite struct {
	id   uint64
	hash uint64 // valueHash of the value set
	del  bool
}

// readHistory replays the whole log of store.
func readHistory(ctx context.Context, store logstore.Store) (*logHistory, error) {
	latest, err := store.LatestUpdateID(ctx)
	if err != nil {
		return nil, err
	}
	h := &logHistory{latest: latest, model: map[string][]byte{}, writes: map[string][]keyWrite{}}
	err = store.ReadUpdates(ctx, 1, latest, func(id uint64, contents []byte) error {
		return logstore.DecodeRecord(contents, func(it logstore.Item) error {
			k := string(it.Key)
			w := keyWrite{id: id, del: it.Delete}
			if it.Delete {
				delete(h.model, k)
			} else {
				h.model[k] = bytes.Clone(it.Value)
				w.hash = valueHash(it.Value)
			}
			if ws := h.writes[k]; len(ws) > 0 && ws[len(ws)-1].id == id {
				ws[len(ws)-1] = w
			} else {
				h.writes[k] = append(ws, w)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: replay: %w", err)
	}
	return h, nil
}

// replayTo returns the key/value map of the log's records up to id limit.
func replayTo(ctx context.Context, store logstore.Store, limit uint64) (map[string][]byte, error) {
	model := map[string][]byte{}
	if limit == 0 {
		return model, nil
	}
	err := store.ReadUpdates(ctx, 1, limit, func(id uint64, contents []byte) error {
		return logstore.DecodeRecord(contents, func(it logstore.Item) error {
			if it.Delete {
				delete(model, string(it.Key))
			} else {
				model[string(it.Key)] = bytes.Clone(it.Value)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: replay up to record %d: %w", limit, err)
	}
	return model, nil
}

// checkAcks fails unless the log holds every acknowledged write: its
// record with that write of the key, or a later write of the key (which
// may have replaced the record).
func (h *logHistory) checkAcks(acks []faultAck) error {
	for _, a := range acks {
		ws := h.writes[a.Key]
		if len(ws) > 0 && ws[len(ws)-1].id > a.ID {
			continue
		}
		i := sort.Search(len(ws), func(i int) bool { return ws[i].id >= a.ID })
		if i < len(ws) && ws[i].id == a.ID && ws[i].del == a.Del && (a.Del || ws[i].hash == a.Hash) {
			continue
		}
		what := "set"
		if a.Del {
			what = "delete"
		}
		found := "no write of the key at or after it"
		if i < len(ws) && ws[i].id == a.ID {
			found = fmt.Sprintf("another write of the key at record %d (delete %v)", a.ID, ws[i].del)
		}
		return fmt.Errorf("%w: the acknowledged %s of %q at record %d is not in the log (latest %d): %s",
			errLost, what, a.Key, a.ID, h.latest, found)
	}
	return nil
}

// converge pauses the writers and checks that everything agrees with the
// log as it now is: each machine's Update (RebuildAuto) succeeds, its
// state passes Check and equals a fresh replay of the log; a new reader on
// its state file, and every writer process, read the same; the log holds
// every write acknowledged since the last check; the log passes its own
// Check. Then the writers go on.
func (r *faultRun) converge() error {
	ctx := r.ctx
	if _, err := r.pauseAll(true); err != nil {
		return err
	}
	fresh, closeFresh, err := r.log.openExisting()
	if err != nil {
		return fmt.Errorf("whycache-torture: open the log: %w", err)
	}
	defer closeFresh()
	for _, m := range r.machines {
		st, err := m.inst.UpdateStats(ctx)
		if err != nil {
			return fmt.Errorf("whycache-torture: %s: Update: %w", m.name, err)
		}
		if st.Rebuilt != nil {
			if !r.rebuildOK {
				return fmt.Errorf("whycache-torture: %s: Update rebuilt the state (%v) though the log did not go backwards", m.name, st.Rebuilt)
			}
			if !errors.Is(st.Rebuilt, whycache.ErrLogDiverged) {
				return fmt.Errorf("whycache-torture: %s: Update rebuilt the state because %v, want ErrLogDiverged", m.name, st.Rebuilt)
			}
			r.rebuilds++
		}
	}
	h, err := readHistory(ctx, fresh)
	if err != nil {
		return err
	}
	for _, m := range r.machines {
		if err := m.inst.Check(); err != nil {
			return fmt.Errorf("whycache-torture: %s: state Check: %w", m.name, err)
		}
		if id := m.inst.UpdateID(); id != h.latest {
			return fmt.Errorf("%w: %s is at record %d after Update, the log at %d", errLost, m.name, id, h.latest)
		}
		if err := compare(m.name, contents(m.inst), h.model); err != nil {
			return err
		}
		reader, err := whycache.Open(fresh, whycache.Options{StatePath: m.state})
		if err != nil {
			return err
		}
		valid, got := reader.Valid(), contents(reader)
		reader.Close()
		if !valid {
			return fmt.Errorf("%w: a new reader of %s's state file finds it not filled", errLost, m.name)
		}
		if err := compare("a new reader of "+m.name+"'s state file", got, h.model); err != nil {
			return err
		}
	}
	keys, sum := modelDigest(h.model)
	for _, w := range r.writers {
		rep, err := r.request(w, "digest", "digest")
		if err != nil {
			return err
		}
		if !rep.Valid || rep.UpdateID != h.latest || rep.Keys != keys || rep.Sum != sum {
			return fmt.Errorf("%w: %v reads a state (valid %v) at record %d with %d keys (digest %x); the log replayed is at %d with %d keys (digest %x)",
				errLost, w, rep.Valid, rep.UpdateID, rep.Keys, rep.Sum, h.latest, keys, sum)
		}
	}
	if err := h.checkAcks(r.pending); err != nil {
		return err
	}
	r.acked += len(r.pending)
	r.pending = nil
	for key, id := range r.vanished {
		if ws := h.writes[key]; len(ws) == 0 || ws[len(ws)-1].id <= id {
			return fmt.Errorf("%w: key %q (record %d) vanished from a state, but the log has no later write of it", errLost, key, id)
		}
	}
	clear(r.vanished)
	if c, ok := fresh.(logstore.Checker); ok {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("whycache-torture: log Check: %w", err)
		}
	}
	r.checks++
	r.keys += len(h.model) * len(r.machines)
	return r.resumeAll()
}

// keyIDs returns, for every key of the writers' key space that the state
// file at path holds, the id of the record that wrote its value.
func (r *faultRun) keyIDs(path string) (map[string]uint64, error) {
	t, err := prefixtree.Open(path, prefixtree.Options{ReadOnly: true, NoCreate: true})
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: %w", err)
	}
	defer t.Close()
	ids := map[string]uint64{}
	for i := range r.t.cfg.keys {
		k := fmt.Sprintf("k%05d", i)
		_, id, found, err := t.GetEntry([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("whycache-torture: %s: %w", path, err)
		}
		if found {
			ids[k] = id
		}
	}
	return ids, nil
}

// noKeyMovedBack fails if a key of before (keyIDs) is at an older record
// in after; keys gone in after must have a later write in the log, which
// the next converge checks.
func (r *faultRun) noKeyMovedBack(what string, before, after map[string]uint64) error {
	for k, was := range before {
		now, ok := after[k]
		switch {
		case !ok:
			if r.vanished[k] < was {
				r.vanished[k] = was
			}
		case now < was:
			return fmt.Errorf("%w: %s: key %q moved back from record %d to record %d", errLost, what, k, was, now)
		}
		r.movedChecks++
	}
	return nil
}
