package mysqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/whycache/whycache/logstore"
)

// ErrReplicaMismatch is wrapped, together with logstore.ErrLogMismatch, by
// the error of a Poll on the read pool (Options.ReadDB) that holds a log of
// another identity than the primary's: a replica of another server or
// database, a read DSN naming another table's database, or a replica that
// has not yet caught up with a log the primary recreated. Nothing is
// delivered from such a poll.
var ErrReplicaMismatch = errors.New("mysqlstore: the read pool holds another log than the primary")

// primaryIdentityTTL is how long a poll of the read pool trusts the
// primary's identity it last read: a log recreated on the primary is
// noticed within this time even by a replica that still shows the old
// one (a replica that received the new log shows it at once). It costs
// each follower one statement on the primary per TTL.
const primaryIdentityTTL = time.Minute

// primaryIdentity is the primary's log identity and when it was read.
type primaryIdentity struct {
	id logstore.LogID
	at time.Time
}

// checkReplica checks the identity a poll of the read pool showed against
// the primary's. The primary is asked (one small statement) on the first
// check, whenever seen differs from its identity as last read, and when
// that was read more than primaryIdentityTTL ago, so a log recreated on
// the primary is seen as such even while a replica still serves the old
// one.
func (s *Store) checkReplica(ctx context.Context, seen logstore.LogID) error {
	ttl := primaryIdentityTTL
	if s.identityTTL > 0 {
		ttl = s.identityTTL
	}
	if p := s.primaryID.Load(); p != nil && p.id == seen && time.Since(p.at) < ttl {
		return nil
	}
	in, err := s.info(ctx, s.db)
	if err != nil {
		return fmt.Errorf("mysqlstore: poll: compare the read pool's log with the primary's: %w", err)
	}
	s.primaryID.Store(&primaryIdentity{id: in.ID, at: time.Now()})
	if in.ID != seen {
		return fmt.Errorf("%w: table %s holds log %x on the read pool but %x on the primary "+
			"(a replica of another server or database, or one behind a log recreated on the primary): %w",
			ErrReplicaMismatch, s.table, seen[:], in.ID[:], logstore.ErrLogMismatch)
	}
	return nil
}

// Heartbeat sets the meta row's heartbeat time to the primary's clock
// (microseconds since 1970 UTC), with one UPDATE on the primary in
// autocommit. Readers of a replica then see in PollResult.Heartbeat when
// the primary last received one and in PollResult.ReadTime the replica's
// clock: the difference is the replica's lag (plus up to one heartbeat
// period), whether or not anything was committed meanwhile. Errors:
// ErrNoLog when the meta row or the heartbeat column is missing (run
// init-schema on the primary to add it), ErrNotRepresentable in Python
// mode (no meta row), ErrClosed, the context's, the server's.
func (s *Store) Heartbeat(ctx context.Context) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if s.py != nil {
		return fmt.Errorf("mysqlstore: heartbeat: a Python whycache table has no meta row to hold it: %w", logstore.ErrNotRepresentable)
	}
	var n int64
	err := s.retry(ctx, func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, s.q.heartbeat)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		// No row changed: the meta row is missing, or the clock gave
		// the time of the last heartbeat again.
		err = s.db.QueryRowContext(ctx, s.q.latest).Scan(new(uint64))
	}
	switch {
	case isMissing(err):
		return s.noLog(ctx, s.db, "heartbeat", err)
	case err != nil:
		return fmt.Errorf("mysqlstore: heartbeat: %w", err)
	}
	return nil
}

var _ logstore.Heartbeater = (*Store)(nil)
