package filestore

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

// Store is the log in one directory (see the package documentation for
// its layout, its commit protocol and its failure model). It is safe for
// concurrent use by many goroutines, and any number of Stores in any
// number of processes on the machine may use one directory at once. Open
// returns one; Close releases its files.
type Store struct {
	dir  string
	opts Options

	// wsem is the in-process writer lock, a semaphore so that waits for it
	// honour contexts; the flock on lock is taken while holding it. It
	// guards lock (replaced when the lock file was) and w.
	wsem chan struct{}
	lock *os.File // the "lock" file; flock on it is the writer lock
	w    tailWriter

	life lifecycle

	mmu sync.Mutex // guards man
	man manifestCache

	cmu sync.Mutex // guards cursors
	// cursors are recent batch-end positions in segments; see
	// read.go.
	cursors cursorRing

	rmu sync.Mutex // guards wmr
	// wmr is the watermark file as readers keep it open (see
	// readWatermark).
	wmr watermarkReader

	qmu sync.Mutex // guards queue and leading
	// queue holds Commit requests waiting for a group leader, the leader's
	// own among them until it holds the writer lock; leading is true while
	// one goroutine is the leader.
	queue   []*commitReq
	leading bool
}

var (
	_ logstore.Store   = (*Store)(nil)
	_ logstore.Checker = (*Store)(nil)
)

// Options configures Open. The zero value gives the defaults.
type Options struct {
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

// Defaults of Options.
const (
	DefaultSegmentSize   = 64 << 20
	DefaultMaxRecordSize = 256 << 20
)

// lockName is the writer lock file in a store directory.
const lockName = "lock"

// Open opens the log in dir. When dir is missing or holds
// neither a MANIFEST nor segment files, it creates dir (and its parents)
// and an empty log with a new identity there, or, with opts.NoCreate, fails
// with an error wrapping logstore.ErrNoLog that says how to create one. It
// never creates anything beside segment files without a MANIFEST or in a
// directory of Python whycache's file layout: those, a MANIFEST that does
// not match its segments (see the package documentation) and an unreadable
// MANIFEST are errors wrapping logstore.ErrCorrupt. The Store holds
// two open files until Close. Other errors wrap the os error.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.MaxRecordSize <= 0 {
		opts.MaxRecordSize = DefaultMaxRecordSize
	}
	if opts.MaxRecordSize > maxFrameContents {
		return nil, fmt.Errorf("filestore: MaxRecordSize %d above %d", opts.MaxRecordSize, maxFrameContents)
	}
	if opts.FileMode == 0 {
		opts.FileMode = 0o600
	}
	opts.FileMode &= os.ModePerm
	l, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	if err := l.refuse(dir); err != nil {
		return nil, err
	}
	if !l.manifest {
		if opts.NoCreate {
			return nil, noLog(dir)
		}
		dirMode := opts.FileMode | (opts.FileMode&0o444)>>2
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("filestore: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, opts.FileMode)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	s := &Store{dir: dir, opts: opts, lock: lock, wsem: make(chan struct{}, 1)}
	s.man.path = filepath.Join(dir, manifestName)
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
func (s *Store) checkOpen() error {
	for attempt := 0; ; attempt++ {
		m, err := s.manifest()
		if err != nil {
			return err
		}
		err = checkDir(s.dir, m)
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
func (s *Store) initManifest() error {
	return s.withWriterLock(context.Background(), func() error {
		l, err := listDir(s.dir)
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
		if err := os.Remove(s.path(watermarkName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("filestore: %w", err)
		}
		m, err := newManifest(1, 1)
		if err != nil {
			return err
		}
		return s.publishLocked(m)
	})
}

// Dir returns the directory of the log.
func (s *Store) Dir() string { return s.dir }

// maxSingleKeySize is the MaxSingleKeySize the file store reports; see
// the Limits section of the package documentation.
const maxSingleKeySize = 1024

// Limits returns the record size limit of the options and a
// MaxSingleKeySize of 1024, though the store ignores Record.SingleKey.
func (s *Store) Limits() logstore.Limits {
	return logstore.Limits{MaxRecordSize: s.opts.MaxRecordSize, MaxSingleKeySize: maxSingleKeySize}
}

// Info returns the log identity and horizon from the MANIFEST. It never
// creates anything: a MANIFEST gone since the store was opened is an error
// wrapping logstore.ErrCorrupt when segment files remain, else
// logstore.ErrNoLog.
func (s *Store) Info(ctx context.Context) (logstore.Info, error) {
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
func (s *Store) Close() error {
	first, idle := s.life.close()
	if !first {
		return fmt.Errorf("filestore: close: %w", logstore.ErrClosed)
	}
	if idle {
		return s.releaseFiles()
	}
	return nil
}

// releaseFiles closes every file the store holds; the lifecycle makes sure
// nothing uses them any more.
func (s *Store) releaseFiles() error {
	errs := []error{s.lock.Close(), s.w.close()}
	s.mmu.Lock()
	errs = append(errs, s.man.close())
	s.mmu.Unlock()
	s.rmu.Lock()
	errs = append(errs, s.wmr.close())
	s.rmu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("filestore: close: %w", err)
	}
	return nil
}

// enter starts a call: it fails after Close or with a done context.
// Every successful enter is paired with leave.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if !s.life.acquire() {
		return fmt.Errorf("filestore: %w", logstore.ErrClosed)
	}
	return nil
}

// leave ends a call started by enter, releasing the files when the store
// was closed meanwhile and this was the last call.
func (s *Store) leave() {
	if s.life.release() {
		s.releaseFiles()
	}
}

// lifecycle counts the calls in progress so Close can release files after the
// last one without waiting for it.
type lifecycle struct {
	mu     sync.Mutex // guards closed and active
	closed bool
	active int // calls between enter and leave
}

// acquire registers a call; false after close.
func (l *lifecycle) acquire() bool {
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
func (l *lifecycle) close() (first, idle bool) {
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
func (l *lifecycle) release() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	return l.closed && l.active == 0
}

// manifest returns the current MANIFEST (cached; see manifestCache).
func (s *Store) manifest() (*manifest, error) {
	s.mmu.Lock()
	defer s.mmu.Unlock()
	return s.man.load()
}

// publishLocked publishes m as the new MANIFEST. The caller holds the
// writer lock.
func (s *Store) publishLocked(m *manifest) error {
	s.mmu.Lock()
	defer s.mmu.Unlock()
	return s.man.publish(m, s.opts.FileMode, !s.opts.NoSync)
}

// withWriterLock runs fn holding the writer lock (see lockWriter).
func (s *Store) withWriterLock(ctx context.Context, fn func() error) error {
	if err := s.lockWriter(ctx); err != nil {
		return fmt.Errorf("filestore: %w", err)
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
func (s *Store) lockWriter(ctx context.Context) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		err := lockFile(ctx, s.lock)
		if err == nil {
			var same bool
			if same, err = s.lockFileCurrent(); err == nil && same {
				return nil
			}
			unlockFile(s.lock)
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
func (s *Store) unlockWriter() error {
	err := unlockFile(s.lock)
	<-s.wsem
	return err
}

// lockFileCurrent reports whether the open lock file is the one at its
// path.
func (s *Store) lockFileCurrent() (bool, error) {
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
func (s *Store) reopenLockFile() error {
	f, err := os.OpenFile(s.lock.Name(), os.O_RDWR|os.O_CREATE, s.opts.FileMode)
	if err != nil {
		return err
	}
	s.lock.Close()
	s.lock = f
	return nil
}

// path returns the path of a file in the store directory.
func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// lockFile takes the exclusive flock on f, waiting until ctx is done
// (see flock.Lock). The lock belongs to f's open file description: the
// kernel releases it when f is closed or the process dies, so a crashed
// writer never blocks others.
func lockFile(ctx context.Context, f *os.File) error {
	if err := flock.Lock(ctx, int(f.Fd())); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return err
		}
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// tryLockFile takes the exclusive flock on f without waiting; it reports
// false when another open file description holds it.
func tryLockFile(f *os.File) (bool, error) {
	ok, err := flock.TryLock(int(f.Fd()))
	if err != nil {
		return false, fmt.Errorf("filestore: lock %s: %w", f.Name(), err)
	}
	return ok, nil
}

// unlockFile releases the flock taken by lockFile.
func unlockFile(f *os.File) error {
	if err := flock.Unlock(int(f.Fd())); err != nil {
		return fmt.Errorf("filestore: unlock %s: %w", f.Name(), err)
	}
	return nil
}
