package shm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// A reader that waits on a write section longer than Options.ReadTimeout
// gives up with an error that names the writer: the pid the writer
// recorded in the header when it took the lock (F_OFD_GETLK reports no pid
// for open-file-description locks) and what /proc/PID/stat says of that
// process. Pids are those of the writer's pid namespace; a writer in
// another namespace (a container sharing the file) shows as gone or as an
// unrelated process.

// processInfo is what /proc says of a process.
type processInfo struct {
	pid   uint64
	comm  string // the command name, "" when unknown
	state byte   // the state letter of /proc/PID/stat, 0 when the process is gone
}

// describeProcess reads /proc/PID/stat.
func describeProcess(pid uint64) processInfo {
	p := processInfo{pid: pid}
	raw, err := os.ReadFile("/proc/" + strconv.FormatUint(pid, 10) + "/stat")
	if err != nil {
		return p
	}
	// "PID (COMM) S ...": COMM may hold spaces and parentheses, so the
	// state follows the last ')'.
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open || end+2 >= len(raw) {
		return p
	}
	p.comm = string(raw[open+1 : end])
	p.state = raw[end+2]
	return p
}

// stateName is a word for the process state: "stopped", "running",
// "sleeping", ..., or "gone".
func (p processInfo) stateName() string {
	switch p.state {
	case 0:
		return "gone"
	case 'R':
		return "running"
	case 'S':
		return "sleeping"
	case 'D':
		return "in uninterruptible sleep"
	case 'T':
		return "stopped"
	case 't':
		return "stopped by a tracer"
	case 'Z':
		return "a zombie"
	case 'X':
		return "dead"
	case 'I':
		return "idle"
	}
	return "in state " + string(p.state)
}

// stopped reports whether the process is stopped by a signal or a tracer.
func (p processInfo) stopped() bool { return p.state == 'T' || p.state == 't' }

// String is "pid 1234 (comm, stopped)".
func (p processInfo) String() string {
	if p.comm == "" {
		return fmt.Sprintf("pid %d (%s)", p.pid, p.stateName())
	}
	return fmt.Sprintf("pid %d (%s, %s)", p.pid, p.comm, p.stateName())
}

// errStuckNoPID is described in place of a writer that recorded no pid: a
// write section open with no pid in the header is left by a repairer that
// died (or by a damaged file), and is repaired by the next writer.
var errStuckNoPID = errors.New("no writer pid recorded")

// stuckError is the error of a reader that waited as long as waited for a
// write section to end.
func (f *File) stuckError(waited time.Duration) error {
	waited = waited.Round(time.Millisecond)
	pid := atomicLoad(f.mem, offWriterPID)
	held, lerr := f.lockHeldElsewhere()
	if pid == 0 {
		if lerr == nil && !held {
			return fmt.Errorf("%w: %s: a write section is open with %v and no writer holds the lock after %v (ReadTimeout); "+
				"any writer repairs it: open the state read-write (for example run an update)", ErrWriterStuck, f.path, errStuckNoPID, waited)
		}
		return fmt.Errorf("%w: %s: the writer lock's holder has not ended its write section after %v (ReadTimeout) and recorded no pid", ErrWriterStuck, f.path, waited)
	}
	p := describeProcess(pid)
	switch {
	case lerr == nil && !held && f.opts.ReadOnly:
		return fmt.Errorf("%w: %s: writer %v died inside its write section and no process rolled its transaction back within %v (ReadTimeout); "+
			"this reader has read access only and never repairs: a process that opens the state read-write (for example an update) rolls it back",
			ErrWriterStuck, f.path, p, waited)
	case lerr == nil && !held:
		return fmt.Errorf("%w: %s: writer %v left its write section open and holds no lock, and its transaction was not rolled back within %v (ReadTimeout); "+
			"a process that opens the state read-write (for example an update) rolls it back",
			ErrWriterStuck, f.path, p, waited)
	case p.stopped():
		return fmt.Errorf("%w: %s: writer %v has not ended its write section after %v (ReadTimeout); "+
			"resume it with `kill -CONT %d` or end it with `kill %d` (its transaction is then rolled back)",
			ErrWriterStuck, f.path, p, waited, pid, pid)
	case p.state == 0:
		return fmt.Errorf("%w: %s: writer %v still holds the lock after %v (ReadTimeout) but is not visible here (another pid namespace?); "+
			"end the process that holds %s open for writing", ErrWriterStuck, f.path, p, waited, f.path)
	}
	return fmt.Errorf("%w: %s: writer %v has not ended its write section after %v (ReadTimeout); "+
		"it is in a long transaction (raise ReadTimeout) or hung (end it with `kill %d`; its transaction is then rolled back)",
		ErrWriterStuck, f.path, p, waited, pid)
}
