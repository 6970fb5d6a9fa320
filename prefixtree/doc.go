// Package prefixtree is the ordered key/value map that lives inside a shm
// state file and is shared by every process that maps it.
//
// Two structures index the same entries:
//
//   - a hash table (xxhash64, linear probing, 16-bit tags in the slots) for
//     point lookups: one probe and one entry read, about two cache misses at
//     a million keys;
//   - a B+tree of fixed 1 KiB nodes whose leaf slots hold an 8-byte key
//     prefix beside the entry offset, for ordered iteration, seeks and
//     prefix scans.
//
// Every entry carries the id of the log record that last wrote it. A write
// with an older id than the stored one is ignored, so applying records out
// of order never moves a key backwards; deletes leave a tombstone with the
// id (visible to no reader) until PurgeTombstones removes it.
//
// Readers take no lock: they use the file's seqlock and retry when a writer
// intervened; all offsets they follow are bounds-checked. Writers go
// through a Batch, which is one shm transaction: readers in every process
// see all of a batch or none of it, and a crash at any instant rolls it
// back. No read waits without end for a writer (Options.ReadTimeout, then
// ErrWriterStuck), and BeginContext bounds the wait for the writer lock.
//
// OpenIn opens the map in a directory checked by internal/statedir, for a
// machine shared with other users, and Options.ReadOnly opens it with read
// permission only (see the shm package).
package prefixtree
