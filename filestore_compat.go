package whycache

import (
	"context"

	"github.com/whycache/whycache/logstore"
)

// Interim adapter to the logstore contract (store_compat.go).

// Commit commits records; see logstore.Store.
func (s *FileStore) Commit(ctx context.Context, expect logstore.LogID, records []logstore.Record) (logstore.Committed, error) {
	return compatCommit(ctx, s, expect, records, s.commitRecords)
}

// Poll reads records after a position; see logstore.Store.
func (s *FileStore) Poll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	return compatPoll(ctx, s, req, fn)
}
