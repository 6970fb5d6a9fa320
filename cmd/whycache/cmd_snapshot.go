package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/whycache/whycache"
)

func snapshotCommand() *command {
	return &command{
		name:    "snapshot",
		summary: "write or load a snapshot of the state",
		sub:     []*command{snapshotExportCommand(), snapshotImportCommand()},
	}
}

func snapshotExportCommand() *command {
	return &command{
		name:    "export",
		group:   "snapshot",
		args:    "--out FILE|-",
		summary: "write a checksummed snapshot of the state",
		help: `Writes a consistent, checksummed image of this machine's state to FILE (via
a temporary file renamed into place) or to stdout with "--out -". Other
processes keep reading and writing meanwhile. The summary goes to stdout, or
to stderr when the snapshot does. A periodic export job copies the file to
new machines, which load it with 'whycache snapshot import' and then tail
the log from the snapshot's update id.`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			out := fs.String("out", "", "write the snapshot to `FILE` (- for stdout)")
			update := fs.Bool("update", false, "apply new log records first")
			gz := fs.Bool("gzip", false, "compress the snapshot (import recognizes it)")
			return func(e *env, _ []string) error {
				if *out == "" {
					return usageErrorf("snapshot export: missing --out FILE (or --out - for stdout)")
				}
				return e.snapshotExport(*out, *update, *gz)
			}
		},
	}
}

// snapshotSummary is the --json output of both snapshot commands.
type snapshotSummary struct {
	File     string  `json:"file"`
	UpdateID uint64  `json:"update_id"`
	Keys     uint64  `json:"keys"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
}

func (e *env) snapshotExport(out string, update, gz bool) error {
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	const what = "snapshot export"
	if err := e.maybeUpdate(s, update, what); err != nil {
		return err
	}
	if err := s.requireValid(what); err != nil {
		return err
	}
	st, err := s.inst.Stats(nil)
	if err != nil {
		return wrap(err, "%s", what)
	}
	// Snapshot size: 32-byte header, 16 bytes per item plus its key and
	// value, 20-byte trailer. Writes meanwhile make it an estimate.
	p := e.newProgress("export", 52+16*int64(st.Keys)+int64(st.DataBytes), true)
	start := time.Now()
	var id uint64
	var n int64
	opts := whycache.SnapshotOptions{Gzip: gz}
	if out == "-" {
		cw := &countingWriter{w: e.stdout, counter: counter{p: p}}
		id, err = s.inst.WriteSnapshotOptions(e.ctx, cw, opts)
		n = cw.n
	} else {
		id, n, err = writeFileAtomic(out, func(w io.Writer) (uint64, error) {
			return s.inst.WriteSnapshotOptions(e.ctx, &countingWriter{w: w, counter: counter{p: p}}, opts)
		})
	}
	p.finish()
	if err != nil {
		return wrap(err, "%s", what)
	}
	after, err := s.inst.Stats(nil)
	if err != nil {
		return wrap(err, "%s", what)
	}
	sum := snapshotSummary{File: out, UpdateID: id, Keys: after.Keys, Bytes: n, Seconds: time.Since(start).Seconds()}
	w := e.stdout
	if out == "-" {
		w = e.stderr
	}
	if e.g.json {
		return writeJSON(w, sum)
	}
	_, err = fmt.Fprintf(w, "snapshot of update id %d (about %d keys, %s) written to %s in %s\n", id, sum.Keys, formatBytes(n), out, fmtDur(time.Since(start)))
	return err
}

// writeFileAtomic writes a file through a temporary file beside it that
// is synced and renamed over path when write succeeds. It returns write's
// result and the bytes written.
func writeFileAtomic(path string, write func(io.Writer) (uint64, error)) (uint64, int64, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, 0, err
	}
	cw := &countingWriter{w: f}
	id, err := write(cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, 0, err
	}
	return id, cw.n, nil
}

func snapshotImportCommand() *command {
	return &command{
		name:    "import",
		group:   "snapshot",
		args:    "FILE|-",
		summary: "load a snapshot as this machine's state",
		help: `Verifies a snapshot written by 'whycache snapshot export' (from FILE, or stdin
with "-") and makes it the state: the new state is built beside the current
one and swapped in atomically only if the whole snapshot checks out (a
damaged or truncated snapshot leaves the current state in use). Processes
using the state move to the new one on their own. The snapshot must come
from the same log as --store. With --update the log is then applied from
the snapshot's update id.

No key moves back: when the current state is newer than the snapshot, the
loaded state is first caught up with the log to at least the current
state's update id; if that is impossible (the log is unreachable, or was
compacted past the snapshot), the import is refused, unless --force.`,
		minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			update := fs.Bool("update", false, "apply the log records newer than the snapshot afterwards")
			force := fs.Bool("force", false, "load a snapshot older than the current state even if it cannot be caught up first (keys move back)")
			return func(e *env, args []string) error { return e.snapshotImport(args[0], *update, *force) }
		},
	}
}

func (e *env) snapshotImport(in string, update, force bool) error {
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	what := "snapshot import " + in
	var r io.Reader = e.stdin
	var total int64
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return wrap(err, "snapshot import")
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			total = fi.Size()
		}
		r = f
	}
	p := e.newProgress("import", total, true)
	start := time.Now()
	cr := &countingReader{r: r, counter: counter{p: p}}
	err = s.inst.LoadSnapshotOptions(e.ctx, cr, whycache.SnapshotLoadOptions{Force: force})
	p.finish()
	switch {
	case errors.Is(err, whycache.ErrLogMismatch):
		return wrap(err, "%s: the snapshot was written from another log than %s", what, s.describe())
	case err != nil:
		return wrap(err, "%s", what)
	}
	loadedID := s.inst.UpdateID()
	if err := e.maybeUpdate(s, update, what); err != nil {
		return err
	}
	st, err := s.inst.Stats(nil)
	if err != nil {
		return wrap(err, "%s", what)
	}
	sum := snapshotSummary{File: in, UpdateID: st.UpdateID, Keys: st.Keys, Bytes: cr.n, Seconds: time.Since(start).Seconds()}
	if e.g.json {
		return writeJSON(e.stdout, sum)
	}
	e.printf("loaded snapshot of update id %d (%s) into %s", loadedID, formatBytes(cr.n), s.inst.StatePath())
	if update {
		e.printf(", then updated to %d", st.UpdateID)
	}
	e.printf(": %d keys, in %s\n", st.Keys, fmtDur(time.Since(start)))
	return nil
}
