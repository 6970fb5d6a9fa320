package whycache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/whycache/whycache/internal/flock"
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
//     flagged (see filestore_segment.go). Only the last segment listed (the
//     tail) is appended to; the others are sealed: they never change again
//     and the MANIFEST records their exact size and last position.
//   - WATERMARK: where the tail was acknowledged to end after the last
//     Commit: offset, last id and nonce of the last batch whose fdatasync
//     completed, and the commit's time (see filestore_watermark.go).
//
// Format 1 segments and version 1 MANIFESTs (written before nonces) stay
// readable: their frames have nonce 0, so positions in them are checked by
// id only. A writer never appends to a format-1 segment: it seals it and
// starts a format-2 one. Once a version 2 MANIFEST is published, programs
// that know only version 1 refuse the directory.
//
// # Commit
//
// Concurrent Commit calls on one FileStore are grouped: one goroutine
// takes the writer lock, checks each call's expected identity, appends the
// frames of every waiting call (each call's batch under its own nonce)
// with one write, fdatasyncs, records the watermark and hands each caller
// its own consecutive ids. Ids follow the last complete batch under the
// lock, so commit order is id order across processes. A tail over
// FileStoreOptions.SegmentSize is sealed and a new one started. Space is
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
// complete batch of the tail when the call began. A FileStore remembers
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
//     ahead or mismatched. A FileStore open across the restore notices the
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
type FileStore struct {
	dir  string
	opts FileStoreOptions

	// wsem is the in-process writer lock, a semaphore so that waits for it
	// honour contexts; the flock on lock is taken while holding it. It
	// guards lock (replaced when the lock file was) and w.
	wsem chan struct{}
	lock *os.File // the "lock" file; flock on it is the writer lock
	w    fsWriter

	life fsLife

	mmu sync.Mutex // guards man
	man fsManifestCache

	cmu sync.Mutex // guards cursors
	// cursors are recent batch-end positions in segments; see
	// filestore_read.go.
	cursors fsCursors

	rmu sync.Mutex // guards wmr
	// wmr is the watermark file as readers keep it open (see
	// readWatermark).
	wmr fsWatermarkReader

	qmu sync.Mutex // guards queue and leading
	// queue holds Commit requests waiting for a group leader, the leader's
	// own among them until it holds the writer lock; leading is true while
	// one goroutine is the leader.
	queue   []*fsCommitReq
	leading bool
}

var (
	_ logstore.Store   = (*FileStore)(nil)
	_ logstore.Checker = (*FileStore)(nil)
)

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
	// compactions (reported as corruption where the watermark survived).
	// For tests and benchmarks.
	NoSync bool

	// NoCreate makes opening a directory that holds no log (missing, or
	// without a MANIFEST and segment files) an error wrapping
	// logstore.ErrNoLog instead of creating one there.
	NoCreate bool
}

// Defaults of FileStoreOptions.
const (
	DefaultFileStoreSegmentSize   = 64 << 20
	DefaultFileStoreMaxRecordSize = 256 << 20
)

// fsLockName is the writer lock file in a store directory.
const fsLockName = "lock"

// NewFileStore opens the log in dir with default options, creating dir and
// an empty log when dir is missing or holds no log. See
// NewFileStoreOptions.
func NewFileStore(dir string) (*FileStore, error) {
	return NewFileStoreOptions(dir, FileStoreOptions{})
}

// NewFileStoreOptions opens the log in dir. When dir is missing or holds
// neither a MANIFEST nor segment files, it creates dir (and its parents)
// and an empty log with a new identity there, or, with opts.NoCreate, fails
// with an error wrapping logstore.ErrNoLog that says how to create one. It
// never creates anything beside segment files without a MANIFEST or in a
// directory of Python whycache's file layout: those, a MANIFEST that does
// not match its segments (see the FileStore doc) and an unreadable
// MANIFEST are errors wrapping logstore.ErrCorrupt. The FileStore holds
// two open files until Close. Other errors wrap the os error.
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
	l, err := fsListDir(dir)
	if err != nil {
		return nil, err
	}
	if err := l.refuse(dir); err != nil {
		return nil, err
	}
	if !l.manifest {
		if opts.NoCreate {
			return nil, fsNoLog(dir)
		}
		dirMode := opts.FileMode | (opts.FileMode&0o444)>>2
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("whycache: filestore: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, fsLockName), os.O_RDWR|os.O_CREATE, opts.FileMode)
	if err != nil {
		return nil, fmt.Errorf("whycache: filestore: %w", err)
	}
	s := &FileStore{dir: dir, opts: opts, lock: lock, wsem: make(chan struct{}, 1)}
	s.man.path = filepath.Join(dir, fsManifestName)
	if l.manifest {
		err = s.checkOpen()
	} else {
		err = s.initManifest()
	}
	if err != nil {
		lock.Close()
		s.man.close()
		return nil, err
	}
	return s, nil
}

// checkOpen reads the MANIFEST and checks the directory against it. A
// mismatch seen while another process published a new MANIFEST (a roll or
// a compaction racing the check) is checked again.
func (s *FileStore) checkOpen() error {
	for attempt := 0; ; attempt++ {
		m, err := s.manifest()
		if err != nil {
			return err
		}
		err = fsCheckDir(s.dir, m)
		if err == nil {
			return nil
		}
		now, lerr := s.manifest()
		if lerr != nil {
			return lerr
		}
		if now == m || attempt == 3 {
			return err
		}
	}
}

// initManifest creates the MANIFEST of a new log, under the writer lock,
// unless another process created one meanwhile.
func (s *FileStore) initManifest() error {
	return s.withWriterLock(context.Background(), func() error {
		l, err := fsListDir(s.dir)
		if err != nil {
			return err
		}
		if err := l.refuse(s.dir); err != nil {
			return err
		}
		if l.manifest {
			return s.checkOpen()
		}
		// A watermark left without a log would name the new log's first
		// segment.
		if err := os.Remove(s.path(fsWatermarkName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("whycache: filestore: %w", err)
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

// Info returns the log identity and horizon from the MANIFEST. It never
// creates anything: a MANIFEST gone since the store was opened is an error
// wrapping logstore.ErrCorrupt when segment files remain, else
// logstore.ErrNoLog.
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
	s.rmu.Lock()
	errs = append(errs, s.wmr.close())
	s.rmu.Unlock()
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

// withWriterLock runs fn holding the writer lock (see lockWriter).
func (s *FileStore) withWriterLock(ctx context.Context, fn func() error) error {
	if err := s.lockWriter(ctx); err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	err := fn()
	if uerr := s.unlockWriter(); err == nil {
		err = uerr
	}
	return err
}

// lockWriter takes the in-process writer lock and then the flock on the
// lock file, waiting for each until ctx is done (then it returns ctx's
// error, unwrapped, holding nothing; other errors carry no package
// prefix either). When the lock file was replaced
// since it was opened (the directory restored from a copy), it opens the
// new one and locks that, so that every writer locks the same file.
func (s *FileStore) lockWriter(ctx context.Context) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		err := fsLockFile(ctx, s.lock)
		if err == nil {
			var same bool
			if same, err = s.lockFileCurrent(); err == nil && same {
				return nil
			}
			fsUnlockFile(s.lock)
		}
		if err == nil {
			err = s.reopenLockFile()
		}
		if err != nil {
			<-s.wsem
			return err
		}
	}
}

// unlockWriter releases what lockWriter took.
func (s *FileStore) unlockWriter() error {
	err := fsUnlockFile(s.lock)
	<-s.wsem
	return err
}

// lockFileCurrent reports whether the open lock file is the one at its
// path.
func (s *FileStore) lockFileCurrent() (bool, error) {
	held, err := s.lock.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(s.lock.Name())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

// reopenLockFile replaces the open lock file by the one at its path
// (creating it). The caller holds wsem.
func (s *FileStore) reopenLockFile() error {
	f, err := os.OpenFile(s.lock.Name(), os.O_RDWR|os.O_CREATE, s.opts.FileMode)
	if err != nil {
		return err
	}
	s.lock.Close()
	s.lock = f
	return nil
}

// path returns the path of a file in the store directory.
func (s *FileStore) path(name string) string { return filepath.Join(s.dir, name) }

// fsLockFile takes the exclusive flock on f, waiting until ctx is done
// (see flock.Lock). The lock belongs to f's open file description: the
// kernel releases it when f is closed or the process dies, so a crashed
// writer never blocks others.
func fsLockFile(ctx context.Context, f *os.File) error {
	if err := flock.Lock(ctx, int(f.Fd())); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return err
		}
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// fsTryLockFile takes the exclusive flock on f without waiting; it reports
// false when another open file description holds it.
func fsTryLockFile(f *os.File) (bool, error) {
	ok, err := flock.TryLock(int(f.Fd()))
	if err != nil {
		return false, fmt.Errorf("whycache: filestore: lock %s: %w", f.Name(), err)
	}
	return ok, nil
}

// fsUnlockFile releases the flock taken by fsLockFile.
func fsUnlockFile(f *os.File) error {
	if err := flock.Unlock(int(f.Fd())); err != nil {
		return fmt.Errorf("whycache: filestore: unlock %s: %w", f.Name(), err)
	}
	return nil
}
