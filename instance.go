package whycache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whycache/whycache/internal/ctxsync"
	"github.com/whycache/whycache/internal/statedir"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
	"github.com/whycache/whycache/shm"
)

// Options configure an Instance. They are fixed when Open returns.
type Options struct {
	// Name is the instance name; it picks the default state file,
	// DefaultStateDir()/NAME.state. It may not contain a path separator.
	// Empty means "default".
	Name string

	// StatePath overrides the state file path.
	StatePath string

	// MaxUpdateSize is the largest encoded log record, in bytes; 0 means 1
	// MiB. An item that does not fit alone in a record of this size is
	// rejected with ErrTooLarge; larger SetMulti calls are split.
	MaxUpdateSize int

	// FileMode is the permission of created files; 0 means 0600.
	FileMode os.FileMode

	// MaxStateSize is the largest the state file may grow, in bytes; 0
	// means 64 GiB. It reserves address space, not memory, and only
	// applies when the file is created.
	MaxStateSize int64

	// Rebuild says when Update may replace the state by one rebuilt from
	// the whole log; the zero value is RebuildAuto.
	Rebuild RebuildPolicy

	// ReadOnly opens the state file read-only: no file is created or
	// written, reads run at full speed, and every write (Set, Update, ...)
	// fails with ErrReadOnly. A process that may only read the state file
	// gets this mode without asking when it opens an existing state file.
	ReadOnly bool

	// TrustedUIDs and TrustedGIDs name the users and groups, besides the
	// effective user and root, whose state directory and state file this
	// instance accepts (for readers of a state that a follow daemon of
	// another user maintains). Nothing else is accepted: a directory or
	// file owned by an untrusted user, or writable by one, is refused with
	// ErrUnsafe.
	TrustedUIDs, TrustedGIDs []int

	// Notifier, if set, announces every commit of this instance to the
	// followers of other machines, and wakes this machine's follower when
	// others commit (see Notifier). Nil: followers find new records at
	// their next poll.
	Notifier Notifier

	// ReadTimeout bounds how long a read (Get, iteration, Valid, UpdateID,
	// Stats) waits for a writer's batch that does not end (a writer stopped
	// with SIGSTOP, or hung): it then fails with ErrWriterStuck naming the
	// writer's pid. 0 means 10 s. Writers dead mid-batch are repaired by
	// the reader and never count as stuck.
	ReadTimeout time.Duration
}

// RebuildPolicy says when Update may rebuild the state from the whole log
// (beside the old one, swapped in atomically) instead of tailing it.
type RebuildPolicy int

const (
	// RebuildAuto rebuilds when the state cannot follow its own log by
	// tailing it: the log went backwards (ErrLogDiverged) or was compacted
	// past the state (ErrHistoryCompacted). A filled state is never
	// replaced by the content of a log of another identity: Update fails
	// with ErrLogMismatch.
	RebuildAuto RebuildPolicy = iota
	// RebuildNever never rebuilds: Update fails with ErrRebuildNeeded
	// (wrapping the cause) and leaves the state as it is.
	RebuildNever
	// RebuildAnyLog also adopts a log of another identity, replacing the
	// state with its content (the command line's --rebuild).
	RebuildAnyLog
)

// allows reports whether the policy permits a rebuild for cause.
func (p RebuildPolicy) allows(cause error) bool {
	switch p {
	case RebuildAnyLog:
		return true
	case RebuildAuto:
		return !errors.Is(cause, ErrLogMismatch)
	}
	return false
}

// DefaultMaxUpdateSize is the record size limit when Options.MaxUpdateSize
// is zero.
const DefaultMaxUpdateSize = 1 << 20

// DefaultStateDir returns the directory of default state files, private
// to the effective user: /dev/shm/whycache-UID when /dev/shm exists
// (memory-backed, like POSIX shared memory), else whycache-UID in
// os.TempDir(). It is created with mode 0700; an existing one that another
// user owns or can write is refused (ErrUnsafe).
func DefaultStateDir() string { return statedir.DefaultDir() }

// Instance is a cache: a shared state file on this machine kept in step
// with a change log. All methods are safe for concurrent use by many
// goroutines, and many processes may open instances on the same state file
// and log at once.
//
// Close releases the instance; it must not run concurrently with other
// calls on the same Instance. The store is not closed by Close.
type Instance struct {
	store        logstore.Store
	opts         Options
	path         string
	dir          *statedir.Dir // the checked state directory; every state file operation goes through it
	name         string        // the state file's name in dir
	maxRecord    int
	cur          atomic.Pointer[prefixtree.Tree] // the state in use, nil until first needed
	updateMu     ctxsync.Mutex                   // serializes Update and state swaps in this process
	mu           sync.Mutex                      // guards the following
	retired      []*prefixtree.Tree              // replaced states, unmapped at Close (readers may still use them)
	view         LogView                         // what the last complete poll of the log showed
	notifyErrors atomic.Uint64                   // announcements the Notifier failed to publish
	loads        loadGroup                       // GetOrLoad's loads in flight
	closed       bool
}

// Open returns an instance on the given log store. It does not contact the
// store. It opens and checks the state directory (creating it with mode
// 0700, or 0750/0755 when FileMode lets the group or others read, if it is
// missing); the state file is opened (created empty if missing) on first
// use. Errors: a bad Name or option, ErrUnsafe for a directory another
// user owns or can write.
func Open(store logstore.Store, opts Options) (*Instance, error) {
	if store == nil {
		return nil, errors.New("whycache: Open: nil store")
	}
	if opts.MaxUpdateSize == 0 {
		opts.MaxUpdateSize = DefaultMaxUpdateSize
	}
	if opts.MaxUpdateSize < logstore.RecordOverhead+logstore.ItemSize(1, 0, false) {
		return nil, fmt.Errorf("whycache: Open: MaxUpdateSize %d is too small", opts.MaxUpdateSize)
	}
	if lim := store.Limits().MaxRecordSize; lim > 0 && opts.MaxUpdateSize > lim {
		return nil, fmt.Errorf("whycache: Open: MaxUpdateSize %d exceeds the store's record limit %d", opts.MaxUpdateSize, lim)
	}
	if opts.FileMode == 0 {
		opts.FileMode = 0o600
	}
	path := opts.StatePath
	if path == "" {
		name := opts.Name
		if name == "" {
			name = "default"
		}
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return nil, fmt.Errorf("whycache: Open: invalid instance name %q", name)
		}
		path = filepath.Join(DefaultStateDir(), name+".state")
	}
	path = filepath.Clean(path)
	dir, err := statedir.Open(filepath.Dir(path), statedir.Options{
		Trust:   statedir.Trust{Users: opts.TrustedUIDs, Groups: opts.TrustedGIDs},
		Create:  !opts.ReadOnly,
		DirMode: dirModeFor(opts.FileMode),
	})
	if err != nil {
		return nil, withContext("state directory", wrapStateErr(err))
	}
	return &Instance{store: store, opts: opts, path: path, dir: dir, name: filepath.Base(path), maxRecord: opts.MaxUpdateSize}, nil
}

// dirModeFor returns the mode of a state directory for files of mode m:
// 0700, plus search and read for the group or others where m lets them
// read.
func dirModeFor(m os.FileMode) os.FileMode {
	mode := os.FileMode(0o700)
	if m&0o040 != 0 {
		mode |= 0o050
	}
	if m&0o004 != 0 {
		mode |= 0o005
	}
	return mode
}

// StatePath returns the path of the state file.
func (c *Instance) StatePath() string { return c.path }

// Store returns the log store the instance was opened with.
func (c *Instance) Store() logstore.Store { return c.store }

// treeOptions returns o with the instance's options for state files.
func (c *Instance) treeOptions(o prefixtree.Options) prefixtree.Options {
	o.MaxSize = c.opts.MaxStateSize
	o.FileMode = c.opts.FileMode
	o.ReadTimeout = c.opts.ReadTimeout
	o.ReadOnly = o.ReadOnly || c.opts.ReadOnly
	return o
}

// tree returns the state in use, opening it if needed.
func (c *Instance) tree() (*prefixtree.Tree, error) {
	t := c.cur.Load()
	if t != nil && !t.File().Retired() {
		return t, nil
	}
	return c.openTree(t)
}

// openTree opens the state file at the path, replacing stale (the retired
// or closed state seen by the caller) unless another goroutine already did.
func (c *Instance) openTree(stale *prefixtree.Tree) (*prefixtree.Tree, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("whycache: instance closed")
	}
	if t := c.cur.Load(); t != nil && t != stale && !t.File().Retired() {
		return t, nil
	}
	t, err := c.openState(c.name, prefixtree.Options{})
	if errors.Is(err, fs.ErrPermission) && !c.opts.ReadOnly {
		// Read permission only: the state is read as is, never written.
		t, err = c.openState(c.name, prefixtree.Options{NoCreate: true, ReadOnly: true})
	}
	if err != nil {
		return nil, err
	}
	if stale != nil {
		c.retired = append(c.retired, stale)
	}
	c.cur.Store(t)
	return t, nil
}

// openState opens the state file name in the state directory with the
// instance's options and o's.
func (c *Instance) openState(name string, o prefixtree.Options) (*prefixtree.Tree, error) {
	t, err := prefixtree.OpenIn(c.dir, name, c.treeOptions(o))
	return t, wrapStateErr(err)
}

// withTree runs fn on the current state, reopening the path and retrying
// when the state file was retired (replaced by a snapshot or rebuild, or
// deleted) by this or another process.
func (c *Instance) withTree(fn func(t *prefixtree.Tree) error) error {
	t, err := c.tree()
	for attempt := 0; ; attempt++ {
		if err != nil {
			return err
		}
		err = fn(t)
		if !prefixtree.IsRetired(err) || attempt >= 100 {
			return wrapStateErr(err)
		}
		t, err = c.openTree(t)
	}
}

// Valid reports whether the state holds a complete copy of the log as of
// UpdateID: false before the first successful Update or LoadSnapshot, and
// after DeleteSharedState.
func (c *Instance) Valid() bool {
	var ok bool
	_ = c.withTree(func(t *prefixtree.Tree) error {
		m, err := readState(t)
		ok = err == nil && m.filled
		return err
	})
	return ok
}

// UpdateID returns the id of the last log record applied to the state in
// order (records written locally by Set may be newer), or 0. It never
// reports the id of a batch that has not committed yet.
func (c *Instance) UpdateID() uint64 {
	var id uint64
	_ = c.withTree(func(t *prefixtree.Tree) error {
		m, err := readState(t)
		id = m.updateID
		return err
	})
	return id
}

// Get returns a copy of the value of key. It returns ErrNotFound for a
// missing key or an expired item, ErrEmptyKey for an empty one, and ErrInvalidState while the
// state has never been filled. It takes no lock and makes no system call.
func (c *Instance) Get(key []byte) ([]byte, error) {
	v, err := c.AppendGet(nil, key)
	if err == nil && v == nil {
		v = []byte{}
	}
	return v, err
}

// AppendGet appends the value of key to dst and returns the extended
// slice; with a dst of enough capacity it does not allocate. Errors are
// those of Get.
func (c *Instance) AppendGet(dst, key []byte) ([]byte, error) {
	out, _, err := c.appendGetExpiry(dst, key)
	return out, err
}

// TryAppendGet is AppendGet that never waits, for event loops that must
// not block: where AppendGet would wait for a writer's batch (up to
// Options.ReadTimeout for a stopped writer) or take its slow path, it
// returns dst and ErrWouldWait at once, and the caller reads with
// AppendGet where waiting is harmless. Its other errors are ErrNotFound
// and ErrEmptyKey.
func (c *Instance) TryAppendGet(dst, key []byte) ([]byte, error) {
	if len(key) == 0 {
		return dst, ErrEmptyKey
	}
	t := c.cur.Load()
	if t == nil || !filled(t) {
		return dst, ErrWouldWait
	}
	out, _, found, busy, err := t.TryAppendGetExpiry(dst, key)
	switch {
	case busy || err != nil:
		return dst, ErrWouldWait // AppendGet's slow path decides, as for its fast path's errors
	case !found:
		return dst, ErrNotFound
	}
	return out, nil
}

// appendGetExpiry is AppendGet also returning the item's expiry in
// nanoseconds since the Unix epoch (0: never).
func (c *Instance) appendGetExpiry(dst, key []byte) ([]byte, int64, error) {
	if len(key) == 0 {
		return dst, 0, ErrEmptyKey
	}
	t := c.cur.Load()
	if t != nil && filled(t) {
		out, exp, found, err := t.AppendGetExpiry(dst, key)
		if err == nil {
			if !found {
				return dst, 0, ErrNotFound
			}
			return out, exp, nil
		}
	}
	return c.appendGetSlow(dst, key)
}

func (c *Instance) appendGetSlow(dst, key []byte) ([]byte, int64, error) {
	out := dst
	var exp int64
	err := c.withTree(func(t *prefixtree.Tree) error {
		if !filled(t) {
			if t.File().Retired() {
				return fmt.Errorf("whycache: %w", shm.ErrRetired)
			}
			return ErrInvalidState
		}
		v, e, found, err := t.AppendGetExpiry(dst, key)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		out, exp = v, e
		return nil
	})
	if err != nil {
		return dst, 0, err
	}
	return out, exp, nil
}

// CloseSharedState detaches the instance from the state file without
// deleting it; the next call that needs the state opens it again. The old
// mapping is unmapped by Close (goroutines of this process may still be
// reading it at the moment of the call, so it cannot be unmapped earlier).
func (c *Instance) CloseSharedState() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.cur.Swap(nil); t != nil {
		c.retired = append(c.retired, t)
	}
	return nil
}

// Close releases the instance's mappings. It does not close the store and
// must not run concurrently with other calls on the instance.
func (c *Instance) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if t := c.cur.Swap(nil); t != nil {
		errs = append(errs, t.Close())
	}
	for _, t := range c.retired {
		errs = append(errs, t.Close())
	}
	c.retired = nil
	errs = append(errs, c.dir.Close())
	return errors.Join(errs...)
}
