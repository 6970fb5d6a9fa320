package whycache

import "github.com/whycache/whycache/internal/filestore"

// FileStore is a log store (logstore.Store) kept as files in one local
// directory: the log that needs no server. Any number of FileStores, in
// any number of processes on one machine, may use the same directory at
// once. It needs a local Linux file system with flock (not NFS).
//
// Commits are appended to checksummed segment files under a cross-process
// writer lock; concurrent Commit calls share one write and one fdatasync
// (group commit), and commit order is id order across processes. Readers
// take no lock and see only whole Commit batches. Damage is an error
// wrapping logstore.ErrCorrupt that names the file and offset, never a
// silent skip or truncation: only bytes past the last acknowledged batch
// that do not form complete batches (a writer that died mid-append) are a
// torn tail, invisible to readers and truncated by the next writer. A
// directory restored from a backup is a log that went backwards, which
// Poll's verdicts reveal (Instance.Update then rebuilds). Reset is the way
// out of damage that cannot be repaired.
//
// Its methods are those of logstore.Store and logstore.Checker (Check
// verifies the whole log) and Dir, the directory. The layout of the
// directory, the commit protocol and the failure model in detail are the
// documentation of package internal/filestore.
type FileStore = filestore.Store

// FileStoreOptions configures NewFileStoreOptions; the zero value gives
// the defaults NewFileStore uses. Fields (each documented in
// internal/filestore): SegmentSize, above which the segment appended to is
// sealed (DefaultFileStoreSegmentSize); MaxRecordSize
// (DefaultFileStoreMaxRecordSize, at most 4 GiB - 1); FileMode of created
// files (0600); NoSync, no fsync at all (for tests and benchmarks); and
// NoCreate, which makes a directory without a log an error wrapping
// logstore.ErrNoLog instead of creating one.
type FileStoreOptions = filestore.Options

// Defaults of FileStoreOptions.
const (
	DefaultFileStoreSegmentSize   = filestore.DefaultSegmentSize
	DefaultFileStoreMaxRecordSize = filestore.DefaultMaxRecordSize
)

// NewFileStore opens the log in dir with default options, creating dir and
// an empty log when dir is missing or holds no log. See
// NewFileStoreOptions.
func NewFileStore(dir string) (*FileStore, error) {
	return filestore.Open(dir, filestore.Options{})
}

// NewFileStoreOptions opens the log in dir. When dir is missing or holds
// neither a MANIFEST nor segment files, it creates dir (and its parents)
// and an empty log with a new identity there, or, with opts.NoCreate,
// fails with an error wrapping logstore.ErrNoLog that says how to create
// one. A directory with segment files but no MANIFEST, one in Python
// whycache's file layout, a MANIFEST that does not match its segments and
// an unreadable MANIFEST are errors wrapping logstore.ErrCorrupt; nothing
// is created there. The FileStore holds two open files until Close.
func NewFileStoreOptions(dir string, opts FileStoreOptions) (*FileStore, error) {
	return filestore.Open(dir, opts)
}
