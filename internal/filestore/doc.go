// Package filestore is the file store: a logstore.Store kept as files in
// one local directory, the log whycache uses when no server is wanted
// (whycache.FileStore is this package's Store). Any number of Stores, in
// any number of processes on one machine, may use the same directory at
// once. It needs a local Linux file system with flock (not NFS).
//
// # Layout
//
//   - MANIFEST: JSON naming the log identity, the compaction horizon, the id
//     floor (the lowest id a Commit may assign next), a generation that
//     grows with every publication, and the ordered list of segment files
//     with the first id each may hold and, since version 2, the size and
//     last position (id and nonce) each had when the MANIFEST was
//     published. It is replaced atomically (temporary file, fsync, rename,
//     fsync of the directory).
//   - lock: the writer lock, an flock that the kernel releases when its
//     holder dies. Commits, segment rolls, MANIFEST publications and the
//     final step of each compaction take it; reads never do. Waits for it
//     honour the caller's context.
//   - <first id, 20 digits>.seg (and <first id>.<generation>.seg for a
//     rewritten one): segment files of checksummed frames, one per record,
//     each carrying its Commit's nonce, the last frame of each Commit
//     flagged (see segment.go). Only the last segment listed (the
//     tail) is appended to; the others are sealed: they never change again
//     and the MANIFEST records their exact size and last position.
//   - WATERMARK: where the tail was acknowledged to end after the last
//     Commit: offset, last id and nonce of the last batch whose fdatasync
//     completed, and the commit's time (see watermark.go).
//
// Format 1 segments and version 1 MANIFESTs (written before nonces) stay
// readable: their frames have nonce 0, so positions in them are checked by
// id only. A writer never appends to a format-1 segment: it seals it and
// starts a format-2 one. Once a version 2 MANIFEST is published, programs
// that know only version 1 refuse the directory.
//
// # Commit
//
// Concurrent Commit calls on one Store are grouped: one goroutine
// takes the writer lock, checks each call's expected identity, appends the
// frames of every waiting call (each call's batch under its own nonce)
// with one write, fdatasyncs, records the watermark and hands each caller
// its own consecutive ids. Ids follow the last complete batch under the
// lock, so commit order is id order across processes. A tail over
// Options.SegmentSize is sealed and a new one started. Space is
// reserved with fallocate before the write, and a failed write is
// truncated away, so a full disk leaves the log unchanged.
//
// Readers on the same machine can see a batch between its write and the end
// of its fdatasync: a power failure in that window can lose a batch that a
// local reader applied.
//
// # Reads
//
// Readers deliver only complete batches, so a Commit of several records is
// atomic for them; an append in progress or torn by a crash is invisible.
// Poll reads one MANIFEST and the segments it names, up to the last
// complete batch of the tail when the call began. A Store remembers
// recent scan positions (segment, offset, id, nonce), so a poller reads
// only what is new and judges its position without reading anything, and
// re-reads the MANIFEST only when a stat shows it changed.
//
// # Compaction and Reset
//
// Compact works in groups of adjacent segments (merging small ones up to
// SegmentSize): it writes a group's new file without any lock while
// calling the CompactFunc, then takes the writer lock, copies batches
// appended to the group's last segment meanwhile, renames the file into
// place, publishes the MANIFEST and removes the replaced files. When it
// drops the last frame of a batch that ends at or above the horizon, it
// leaves a mark (id and nonce, no record) in its place, so Poll can still
// verify that commit. A reader that has a replaced file open reads it to
// its end; one that finds a file gone re-reads the MANIFEST and continues
// from the id it reached, which is safe because compaction keeps ids.
// Reset publishes a MANIFEST with a new identity, no segments and an id
// floor above every old id, then removes the old files.
//
// # Failure model
//
// Acknowledged bytes are never dropped and ids are never reused; what
// cannot be trusted is an error wrapping logstore.ErrCorrupt that names the
// file and offset, never a silent skip or truncation:
//
//   - A sealed segment must end exactly after its last complete batch, at
//     the size and position the MANIFEST recorded: a damaged frame,
//     trailing bytes or a different end is corruption for every reader and
//     writer. (Segments sealed before MANIFEST version 2 have no recorded
//     end; damage inside them is still found.)
//   - In the tail, everything up to the acknowledged end (the watermark,
//     or the size the MANIFEST recorded when it published the segment,
//     whichever is larger) was acknowledged: a frame there that does not
//     verify, or a file shorter than it, is corruption. Readers stop
//     before it, writers refuse to commit and truncate nothing. Beyond the
//     acknowledged end, bytes that do not form complete batches are a torn
//     tail, left by a writer that died while appending: invisible to
//     readers and truncated by the next writer. Complete batches there
//     (written and synced, but the writer died before its Commit returned)
//     are kept.
//   - The watermark is written without a sync. After a power loss it can
//     be stale, never ahead of the synced data; frames between a stale
//     watermark and the true acknowledged end are intact (they were
//     synced), so only damage that a power loss does not cause goes
//     undetected there: a bit flip beyond a stale watermark (or in the
//     tail of a directory whose WATERMARK was lost) counts as a torn tail
//     and is truncated. With NoSync the data may be lost while the
//     watermark survives; the log then reports corruption rather than
//     silently losing acknowledged commits.
//   - Format-1 tails have no watermark: a damaged frame followed by a valid
//     one is corruption, a damaged last frame a torn tail.
//   - A directory with segment files but no MANIFEST, a listed segment that
//     is missing, segment files beyond the MANIFEST's history (an older
//     MANIFEST restored beside newer segments), and frames outside their
//     segment's id range are corruption; the files are left untouched.
//     Orphans of interrupted rolls, compactions and Resets are recognised
//     and removed by the next Compact or Reset.
//   - A directory restored from a backup (a copy of the whole directory)
//     is a log that went backwards: its identity is the old one, but new
//     commits carry new nonces, so Poll judges positions past the backup
//     ahead or mismatched. A Store open across the restore notices the
//     MANIFEST going back and forgets what it remembered. Copies of a
//     directory taken while it was written can be torn; copy it with
//     writers stopped (or hold the lock file's flock while copying).
//   - A directory in Python whycache's file layout (N.bin, latest.repr) is
//     refused, and nothing is added to it.
//
// Reset is the way out of corruption that cannot be repaired: it works on
// a log whose tail is damaged, and the ids after it stay above every id
// the damaged log may have handed out.
//
// # Limits
//
// The file store does not index single-key records: it never drops a record
// because a newer one has the same Record.SingleKey, so the log grows with
// every write until Compact shrinks it. Limits still reports a
// MaxSingleKeySize of 1024 (the MySQL store's), as the logstore conformance
// suite requires a positive one; keys of any length are accepted and
// ignored.
package filestore

import _ "github.com/whycache/whycache/internal/linux" // Linux only: a build for another system stops there
