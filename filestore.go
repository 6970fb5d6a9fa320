package whycache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/whycache/whycache/logstore"
)

// FileStore is a logstore.Store kept as files in one local directory. Any
// number of FileStores, in any number of processes on one machine, may use
// the same directory at once. It needs a local Linux file system with
// flock (not NFS).
//
// # Layout
//
//   - MANIFEST: JSON naming the log identity, the compaction horizon, the id
//     floor (the lowest id a Commit may assign next) and the ordered list of
//     segment files with the first id each may hold. It is replaced
//     atomically (temporary file, fsync, rename, fsync of the directory).
//   - lock: the writer lock, an flock that the kernel releases when its
//     holder dies. Commits, segment rolls, MANIFEST publications and the
//     final step of each compaction take it; reads never do.
//   - <first id, 20 digits>.seg (and <first id>.<generation>.seg for a
//     rewritten one): append-only segment files of checksummed frames, one
//     per record, the last frame of each Commit flagged (see
//     filestore_segment.go).
//
// # Commit
//
// Concurrent Commit calls on one FileStore are grouped: one goroutine
// takes the writer lock, truncates a torn tail left by a crashed writer,
// appends the frames of every waiting call with one write, fdatasyncs and
// hands each caller its own consecutive ids. Ids follow the last complete
// frame under the lock, so commit order is id order across processes. A
// segment over FileStoreOptions.SegmentSize is sealed and a new one
// started. Space is reserved with fallocate before the write, and a failed
// write is truncated away, so a full disk leaves the log unchanged.
//
// Readers on the same machine can see a batch between its write and the end
// of its fdatasync: a power failure in that window can lose a batch that a
// local reader applied.
//
// # Reads
//
// Readers deliver only complete batches, so a Commit of several records is
// atomic for them; an append in progress or torn by a crash is invisible.
// A FileStore remembers recent scan positions (segment, offset, id), so a
// poller calling ReadUpdates(last+1, ...) or LatestUpdateID reads only what
// is new, and re-reads the MANIFEST only when a stat shows it changed.
//
// # Compaction and Reset
//
// Compact works in groups of adjacent segments (merging small ones up to
// SegmentSize): it writes a group's new file without any lock while
// calling the CompactFunc, then takes the writer lock, copies records
// appended to the group's last segment meanwhile, renames the file into
// place, publishes the MANIFEST and removes the replaced files. A reader
// that has a replaced file open reads it to its end; one that finds a file
// gone re-reads the MANIFEST and continues from the id it reached, which
// is safe because compaction keeps ids. Reset publishes a MANIFEST with a
// new identity, no segments and an id floor above every old id, then
// removes the old files.
//
// # Limits
//
// The file store does not index single-key records: it never drops a record
// because a newer one has the same Record.SingleKey, so the log grows with
// every write until Compact shrinks it. Limits still reports a
// MaxSingleKeySize of 1024 (the MySQL store's), as the logstore conformance
// suite requires a positive one; keys of any length are accepted and
// ignored.
type FileStore struct {
	dir  string
	opts FileStoreOptions
	lock *os.File // the "lock" file; flock on it is the writer lock

	life fsLife

	mmu sync.Mutex // guards man
	man fsManifestCache

	cmu sync.Mutex // guards cursors
	// cursors are recent batch-end positions in segments; see
	// filestore_read.go.
	cursors fsCursors

	qmu sync.Mutex // guards queue and leading
	// queue holds Commit requests waiting for a group leader; leading is
	// true while one goroutine is the leader.
	queue   []*fsCommitReq
	leading bool

	wmu sync.Mutex // guards w; held together with the flock on lock
	w   fsWriter
}

var _ logstore.Store = (*FileStore)(nil)

// FileStoreOptions configures NewFileStoreOptions. The zero value gives the
// defaults NewFileStore uses.
type FileStoreOptions struct {
	// SegmentSize is the size above which the segment being appended to is
	// sealed and a new one started; 0 means 64 MiB.
	SegmentSize int64

	// MaxRecordSize is the largest record Commit accepts; 0 means 256 MiB.
	// It may not exceed 4 GiB - 1.
	MaxRecordSize int

	// FileMode is the permission of created files; 0 means 0600. Created
	// directories get it plus the search bit wherever it grants reading.
	FileMode os.FileMode

	// NoSync skips every fsync and fdatasync. A process crash still loses
	// nothing, but a power failure may lose or tear recent commits and
	// compactions. For tests and benchmarks.
	NoSync bool
}

// Defaults of FileStoreOptions.
const (
	DefaultFileStoreSegmentSize   = 64 << 20
	DefaultFileStoreMaxRecordSize = 256 << 20
)

// fsLockName is the writer lock file in a store directory.
const fsLockName = "lock"

// NewFileStore opens the log in dir with default options, creating dir and
// an empty log when missing. See NewFileStoreOptions.
func NewFileStore(dir string) (*FileStore, error) {
	return NewFileStoreOptions(dir, FileStoreOptions{})
}

// NewFileStoreOptions opens the log in dir, creating dir (and its parents)
// and an empty log with a new identity when missing. The FileStore holds
// two open files until Close. Errors wrap the os error, or
// logstore.ErrCorrupt for an unreadable MANIFEST.
func NewFileStoreOptions(dir string, opts FileStoreOptions) (*FileStore, error) {
	if err := fsSupported(); err != nil {
		return nil, err
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultFileStoreSegmentSize
	}
	if opts.MaxRecordSize <= 0 {
		opts.MaxRecordSize = DefaultFileStoreMaxRecordSize
	}
	if opts.MaxRecordSize > fsMaxFrameContents {
		return nil, fmt.Errorf("whycache: filestore: MaxRecordSize %d above %d", opts.MaxRecordSize, fsMaxFrameContents)
	}
	if opts.FileMode == 0 {
		opts.FileMode = 0o600
	}
	opts.FileMode &= os.ModePerm
	dirMode := opts.FileMode | (opts.FileMode&0o444)>>2
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("whycache: filestore: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, fsLockName), os.O_RDWR|os.O_CREATE, opts.FileMode)
	if err != nil {
		return nil, fmt.Errorf("whycache: filestore: %w", err)
	}
	s := &FileStore{dir: dir, opts: opts, lock: lock}
	s.man.path = filepath.Join(dir, fsManifestName)
	if err := s.initManifest(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// initManifest creates the MANIFEST of a new log unless one exists.
func (s *FileStore) initManifest() error {
	if _, err := os.Stat(s.man.path); err == nil {
		_, err = s.manifest()
		return err
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	return s.withWriterLock(func() error {
		if _, err := os.Stat(s.man.path); err == nil {
			_, err = s.manifest()
			return err
		}
		m, err := fsNewManifest(1, 1)
		if err != nil {
			return err
		}
		return s.publishLocked(m)
	})
}

// Dir returns the directory of the log.
func (s *FileStore) Dir() string { return s.dir }

// fsMaxSingleKeySize is the MaxSingleKeySize the file store reports; see
// the Limits section of the FileStore doc.
const fsMaxSingleKeySize = 1024

// Limits returns the record size limit of the options and a
// MaxSingleKeySize of 1024, though the store ignores Record.SingleKey.
func (s *FileStore) Limits() logstore.Limits {
	return logstore.Limits{MaxRecordSize: s.opts.MaxRecordSize, MaxSingleKeySize: fsMaxSingleKeySize}
}

// Info returns the log identity and horizon from the MANIFEST.
func (s *FileStore) Info(ctx context.Context) (logstore.Info, error) {
	if err := s.enter(ctx); err != nil {
		return logstore.Info{}, err
	}
	defer s.leave()
	m, err := s.manifest()
	if err != nil {
		return logstore.Info{}, err
	}
	return logstore.Info{ID: m.id, Horizon: m.Horizon}, nil
}

// Close releases the store's files. Calls in progress finish first: the
// files are released when the last of them returns, so Close may be called
// from a callback without deadlocking. Every call after Close, including a
// second Close, returns an error wrapping logstore.ErrClosed.
func (s *FileStore) Close() error {
	first, idle := s.life.close()
	if !first {
		return fmt.Errorf("whycache: filestore: close: %w", logstore.ErrClosed)
	}
	if idle {
		return s.releaseFiles()
	}
	return nil
}

// releaseFiles closes every file the store holds; the lifecycle makes sure
// nothing uses them any more.
func (s *FileStore) releaseFiles() error {
	errs := []error{s.lock.Close(), s.w.close()}
	s.mmu.Lock()
	errs = append(errs, s.man.close())
	s.mmu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("whycache: filestore: close: %w", err)
	}
	return nil
}

// enter starts a call: it fails after Close or with a done context.
// Every successful enter is paired with leave.
func (s *FileStore) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	if !s.life.acquire() {
		return fmt.Errorf("whycache: filestore: %w", logstore.ErrClosed)
	}
	return nil
}

// leave ends a call started by enter, releasing the files when the store
// was closed meanwhile and this was the last call.
func (s *FileStore) leave() {
	if s.life.release() {
		s.releaseFiles()
	}
}

// fsLife counts the calls in progress so Close can release files after the
// last one without waiting for it.
type fsLife struct {
	mu     sync.Mutex // guards closed and active
	closed bool
	active int // calls between enter and leave
}

// acquire registers a call; false after close.
func (l *fsLife) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.active++
	return true
}

// close marks the store closed. first is false when it already was; idle
// is true when no call is in progress (the caller then releases the files).
func (l *fsLife) close() (first, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, false
	}
	l.closed = true
	return true, l.active == 0
}

// release ends a call and reports whether the files must now be released
// (the store was closed and this was the last call).
func (l *fsLife) release() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	return l.closed && l.active == 0
}

// manifest returns the current MANIFEST (cached; see fsManifestCache).
func (s *FileStore) manifest() (*fsManifest, error) {
	s.mmu.Lock()
	defer s.mmu.Unlock()
	return s.man.load()
}

// publishLocked publishes m as the new MANIFEST. The caller holds the
// writer lock.
func (s *FileStore) publishLocked(m *fsManifest) error {
	s.mmu.Lock()
	defer s.mmu.Unlock()
	return s.man.publish(m, s.opts.FileMode, !s.opts.NoSync)
}

// withWriterLock runs fn holding the in-process writer mutex and the
// cross-process flock.
func (s *FileStore) withWriterLock(fn func() error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := fsLockFile(s.lock); err != nil {
		return err
	}
	err := fn()
	if uerr := fsUnlockFile(s.lock); err == nil {
		err = uerr
	}
	return err
}

// path returns the path of a file in the store directory.
func (s *FileStore) path(name string) string { return filepath.Join(s.dir, name) }
