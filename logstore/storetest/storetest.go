// Package storetest is the conformance suite for logstore.Store
// implementations. A store's tests call Run with a Harness that opens fresh
// logs; every subtest must pass.
//
// Besides the contract written on logstore.Store, the suite fixes these
// points, which the interface leaves open:
//
//   - Commit with zero records commits nothing and returns the current
//     LatestUpdateID.
//   - Ids within one Commit are consecutive; ids of later Commits are
//     higher (gaps between Commits are allowed).
//   - A second Close, like every other method after Close, returns an error
//     wrapping logstore.ErrClosed.
//   - A method called with a context that is already cancelled returns an
//     error wrapping context.Canceled and has no effect (Compact does not
//     call its CompactFunc).
//   - CompactStats counts the records Compact passed to its CompactFunc
//     (RecordsBefore, BytesBefore) and what is left of them afterwards
//     (RecordsAfter, BytesAfter); records above the limit are not counted.
//   - A replacement larger than Limits().MaxRecordSize makes Compact fail
//     with an error wrapping logstore.ErrTooLarge and leaves that record as
//     it was.
//   - After Reset, Info.Horizon is 0 (the new identity already forces
//     every reader to rebuild), and LatestUpdateID is either 0 or not below
//     the latest id before the Reset; new ids are above every old one.
//   - Info and ReadUpdates may be called on another handle of the same log
//     from inside a CompactFunc without deadlocking (readers during a
//     compaction are part of the contract).
//   - Commit through another handle may proceed while Compact runs; if it
//     blocks until Compact ends, the suite still passes but waits up to 10 s.
//   - Poll's Next is the position of the last entry it delivered, or After
//     when it delivered none; a Poll that sets More delivered at least one
//     entry.
package storetest

import (
	"testing"

	"github.com/whycache/whycache/logstore"
)

// Harness opens stores for the suite.
type Harness struct {
	// New returns a store on a fresh, empty log, and open, which opens
	// another independent handle on the same log (as another process
	// would). The suite closes every store it gets.
	New func(t *testing.T) (s logstore.Store, open func(t *testing.T) logstore.Store)

	// SingleKeyReplaces says the store drops an older single-key record
	// when a newer one for the same key is committed (MySQL does; the file
	// store does not).
	SingleKeyReplaces bool

	// SingleKeyAcrossCommits says the store drops an older single-key
	// record only for a newer one of a later commit: of two records of
	// one commit with the same single key, both stay (the Python mode of
	// the MySQL store, whose ids would otherwise have a hole inside the
	// commit).
	SingleKeyAcrossCommits bool

	// NoNonces says the store keeps no commit nonces: Commit returns nonce
	// 0 and positions are checked by id only.
	NoNonces bool

	// Backup, if set, copies the log s belongs to as it is now and returns
	// a function that puts the copy back (identity, ids and records), as an
	// operator restoring a backup does. The suite then checks that readers
	// past the backup are told.
	Backup func(t *testing.T, s logstore.Store) (restore func(t *testing.T))

	// Skip names the conformance tests (by subtest name) that cannot apply
	// to the store, each with the reason; Run skips them saying it.
	Skip map[string]string
}

// Run runs every conformance test as subtests of t. The subtests run one
// after another (not in parallel), each on a fresh log from h.New.
func Run(t *testing.T, h Harness) {
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := h.Skip[tc.name]; ok {
				t.Skip(why)
			}
			tc.fn(t, h)
		})
	}
}

// suite lists the conformance tests in the order Run runs them.
var suite = []struct {
	name string
	fn   func(*testing.T, Harness)
}{
	{"EmptyLog", testEmptyLog},
	{"CommitRead", testCommitRead},
	{"CallerBuffers", testCallerBuffers},
	{"ReadStops", testReadStops},
	{"EmptyCommit", testEmptyCommit},
	{"CommitIdentity", testCommitIdentity},
	{"Poll", testPoll},
	{"PollTraces", testPollTraces},
	{"PollBackwards", testPollBackwards},
	{"PollSnapshot", testPollSnapshot},
	{"PollStops", testPollStops},
	{"Limits", testLimits},
	{"SingleKey", testSingleKey},
	{"ConcurrentCommits", testConcurrentCommits},
	{"CompactDecisions", testCompactDecisions},
	{"CompactHorizon", testCompactHorizon},
	{"CompactErrors", testCompactErrors},
	{"CompactConcurrentCommits", testCompactConcurrentCommits},
	{"CompactReaders", testCompactReaders},
	{"Reset", testReset},
	{"CanceledContext", testCanceledContext},
	{"Close", testClose},
}
