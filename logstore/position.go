package logstore

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// NewNonce returns a random, non-zero commit nonce. It fails only when the
// system's random source does.
func NewNonce() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("logstore: commit nonce: %w", err)
		}
		if n := binary.LittleEndian.Uint64(b[:]); n != 0 {
			return n, nil
		}
	}
}

// Judge computes the Verdict on a reader's position after for a log whose
// latest position is latest and whose horizon is horizon. found and nonce
// describe what the store holds at or above after.ID: the nonce of the
// record or mark with the smallest id >= after.ID (found is false when
// there is none). Stores call it so that every store judges alike; they
// need not look anything up when after.ID is 0, above latest.ID, equal to
// it, or when after.Nonce is 0.
func Judge(after, latest Position, horizon uint64, found bool, nonce uint64) Verdict {
	switch {
	case after.ID == 0:
		return VerdictNone
	case after.ID > latest.ID:
		return VerdictAhead
	case after.Nonce == 0:
		return VerdictMatch
	case after.ID == latest.ID:
		found, nonce = true, latest.Nonce
	}
	switch {
	case !found:
		return VerdictUnknown
	case nonce == after.Nonce:
		return VerdictMatch
	case after.ID < horizon:
		// Marks below the horizon may be gone: the first trace found may
		// belong to a later commit.
		return VerdictUnknown
	}
	return VerdictMismatch
}

// NeedsLookup reports whether Judge needs the store's nonce at or above
// after.ID for this request (see Judge).
func NeedsLookup(after, latest Position) bool {
	return after.ID != 0 && after.ID < latest.ID && after.Nonce != 0
}
