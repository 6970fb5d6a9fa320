package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

// errLost is wrapped by every verification failure.
var errLost = errors.New("whycache-torture: state differs from the log")

// replay reads the whole log and returns the key/value map it describes
// and the latest id.
func replay(ctx context.Context, store logstore.Store) (map[string][]byte, uint64, error) {
	latest, err := store.LatestUpdateID(ctx)
	if err != nil {
		return nil, 0, err
	}
	model := map[string][]byte{}
	err = store.ReadUpdates(ctx, 1, latest, func(id uint64, contents []byte) error {
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
		return nil, 0, fmt.Errorf("whycache-torture: replay: %w", err)
	}
	return model, latest, nil
}

// contents returns every key and value of inst.
func contents(inst *whycache.Instance) map[string][]byte {
	got := map[string][]byte{}
	for k, v := range inst.All() {
		got[string(k)] = bytes.Clone(v)
	}
	return got
}

// compare returns an error wrapping errLost describing how got differs
// from want (at most a few keys), or nil.
func compare(what string, got, want map[string][]byte) error {
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q missing", k))
		} else if !bytes.Equal(g, w) {
			diffs = append(diffs, fmt.Sprintf("%q is %d bytes %.8x…, want %d bytes %.8x…", k, len(g), g, len(w), w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q should not exist", k))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	more := ""
	if len(diffs) > 5 {
		more = fmt.Sprintf(" and %d more", len(diffs)-5)
		diffs = diffs[:5]
	}
	return fmt.Errorf("%w: %s: %s%s", errLost, what, strings.Join(diffs, "; "), more)
}

// checkStates verifies a quiet log's states: each passes Check, then
// after an Update has applied every record and equals the log replay.
// It returns the number of records and of keys compared per state.
func checkStates(ctx context.Context, store logstore.Store, insts map[string]*whycache.Instance) (records uint64, keys int, err error) {
	for name, inst := range insts {
		if err := inst.Check(); err != nil {
			return 0, 0, fmt.Errorf("whycache-torture: state %s before Update: %w", name, err)
		}
		if err := inst.Update(ctx); err != nil {
			return 0, 0, fmt.Errorf("whycache-torture: state %s: Update: %w", name, err)
		}
		if err := inst.Check(); err != nil {
			return 0, 0, fmt.Errorf("whycache-torture: state %s after Update: %w", name, err)
		}
	}
	model, latest, err := replay(ctx, store)
	if err != nil {
		return 0, 0, err
	}
	for name, inst := range insts {
		if id := inst.UpdateID(); id != latest {
			return 0, 0, fmt.Errorf("%w: state %s is at record %d after Update, the log at %d", errLost, name, id, latest)
		}
		if err := compare("state "+name, contents(inst), model); err != nil {
			return 0, 0, err
		}
	}
	if fs, ok := store.(*whycache.FileStore); ok {
		if err := fs.Check(ctx); err != nil {
			return 0, 0, fmt.Errorf("whycache-torture: file store: %w", err)
		}
	}
	return latest, len(model), nil
}
