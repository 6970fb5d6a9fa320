package whycache

import (
	"context"
	"errors"
	"fmt"

	"github.com/whycache/whycache/logstore"
)

// Interim adapters of the stores to the logstore contract with nonces and
// Poll: identity checked before the commit, no nonces, Poll composed of
// Info, LatestUpdateID and ReadUpdates (not one snapshot).

func compatCommit(ctx context.Context, s logstore.Store, expect logstore.LogID, records []logstore.Record, commit func(context.Context, []logstore.Record) (uint64, error)) (logstore.Committed, error) {
	if expect != (logstore.LogID{}) {
		in, err := s.Info(ctx)
		if err != nil {
			return logstore.Committed{}, err
		}
		if in.ID != expect {
			return logstore.Committed{}, fmt.Errorf("whycache: commit: %w", logstore.ErrLogMismatch)
		}
	}
	last, err := commit(ctx, records)
	if err != nil {
		return logstore.Committed{}, err
	}
	n := uint64(len(records))
	if n == 0 {
		return logstore.Committed{First: last, Last: last}, nil
	}
	return logstore.Committed{First: last - n + 1, Last: last}, nil
}

var errCompatStop = errors.New("stop")

func compatPoll(ctx context.Context, s logstore.Store, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return logstore.PollResult{}, err
	}
	latest, err := s.LatestUpdateID(ctx)
	if err != nil {
		return logstore.PollResult{}, err
	}
	res := logstore.PollResult{Info: info, Latest: logstore.Position{ID: latest}, Next: req.After}
	res.Verdict = logstore.Judge(req.After, res.Latest, info.Horizon, false, 0)
	max := req.Max
	if max <= 0 {
		max = 1000
	}
	n := 0
	err = s.ReadUpdates(ctx, req.After.ID+1, latest, func(id uint64, c []byte) error {
		if n == max {
			res.More = true
			return errCompatStop
		}
		n++
		if err := fn(logstore.Entry{ID: id, Contents: c}); err != nil {
			return err
		}
		res.Next = logstore.Position{ID: id}
		return nil
	})
	if errors.Is(err, errCompatStop) {
		err = nil
	}
	return res, err
}
