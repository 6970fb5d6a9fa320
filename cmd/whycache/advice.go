package main

import (
	"context"
	"errors"
	"strings"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

// advice returns what the operator can do about err, in one sentence, or
// "" when the error says it all.
func advice(err error) string {
	switch {
	case errors.Is(err, whycache.ErrLogMismatch):
		return "check --store and --table; to replace this machine's state with the content of the log they name, run 'whycache update --rebuild'"
	case errors.Is(err, whycache.ErrSnapshotBehind):
		return "'whycache snapshot import --force' loads it anyway (keys move back until the next update)"
	case errors.Is(err, logstore.ErrNoLog) && strings.Contains(err.Error(), "--format python"):
		return "" // a table of the other format: the error names the flag that fits
	case errors.Is(err, logstore.ErrNoLog):
		return "create the log with 'whycache init-schema' (for MySQL, on the primary)"
	case errors.Is(err, whycache.ErrCorrupt):
		return "'whycache verify' says where the damage is; a damaged state is rebuilt by deleting it and running 'whycache update', a damaged log must be restored from a backup"
	case errors.Is(err, whycache.ErrWriterStuck):
		return "the process named holds this state's writer lock and makes no progress: resume it (kill -CONT PID) or stop it; --read-timeout sets how long reads wait"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return ""
}
