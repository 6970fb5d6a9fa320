package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/whycache/whycache"
)

// waitConverged waits until every follower's state holds record id and
// returns how long that took, or the followers still behind at timeout.
func waitConverged(ctx context.Context, fleet []*follower, id uint64, timeout time.Duration) (time.Duration, []int) {
	start := time.Now()
	for {
		var behind []int
		for _, f := range fleet {
			if f.inst.UpdateID() < id {
				behind = append(behind, f.index)
			}
		}
		if len(behind) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout || ctx.Err() != nil {
			return time.Since(start), behind
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verifyState checks that a state at update id X holds exactly the writes
// with ids <= X, each with its value, and none of the later ones: a state
// never claims an update id whose records it does not hold. It returns
// the number of keys checked.
func verifyState(inst *whycache.Instance, writes []write) (int, error) {
	x := inst.UpdateID()
	for _, w := range writes {
		got, err := inst.Get(key(w.n))
		switch {
		case w.id <= x && err != nil:
			return 0, fmt.Errorf("at update id %d, key %s of record %d: %w", x, key(w.n), w.id, err)
		case w.id <= x && !bytes.Equal(got, value(w.n)):
			return 0, fmt.Errorf("at update id %d, key %s of record %d holds %q", x, key(w.n), w.id, got)
		case w.id > x && !errors.Is(err, whycache.ErrNotFound):
			return 0, fmt.Errorf("at update id %d, key %s of the later record %d: found %q (err %v)", x, key(w.n), w.id, got, err)
		}
	}
	return len(writes), nil
}
