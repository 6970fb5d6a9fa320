package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/whycache/whycache/internal/statedir"
	"golang.org/x/sys/unix"
)

// WalkFunc reports every block reachable from the user roots by calling mark
// with the block's offset and the size it was allocated with. It is called
// with the writer lock held (during Check and crash repair) and must only
// read the file. It must return an error wrapping ErrCorrupt for a structure
// it cannot follow.
type WalkFunc func(f *File, mark func(off, size uint64) error) error

// Options configure Open. They are fixed for the life of a File.
type Options struct {
	// MaxSize is the largest the file may grow, in bytes. It is fixed when
	// the file is created (later opens use the value in the header); 0
	// means DefaultMaxSize. The whole range is reserved as address space.
	MaxSize int64

	// FileMode is the permission of a created file; 0 means 0600.
	FileMode os.FileMode

	// NoCreate makes Open fail with an error wrapping os.ErrNotExist
	// instead of creating a missing file.
	NoCreate bool

	// InitRoots are the user root words of a file Open creates.
	InitRoots [UserRoots]uint64

	// Walk enumerates the blocks reachable from the user roots. It is
	// required to repair after a writer died and for Check; without it,
	// those return an error.
	Walk WalkFunc

	// ReadTimeout bounds how long ReadBegin waits for one write section
	// that does not end: when the counter has held the same odd value for
	// that long and the writer is not dead (a dead writer's transaction is
	// repaired instead), ReadBegin fails with an error wrapping
	// ErrWriterStuck that names the writer. A writer that ends one section
	// and starts the next makes progress and restarts the wait. 0 means
	// DefaultReadTimeout; a negative value is rejected by Open.
	ReadTimeout time.Duration

	// ReadOnly opens the file for reading only: the descriptor is
	// O_RDONLY and the mapping PROT_READ, so read permission on the file
	// is enough, and the File never writes to it. A missing file is not
	// created (an error wrapping os.ErrNotExist). Every read works as
	// fast as on a writable File; a reader that meets a write section
	// waits with bounded sleeps (it cannot announce itself for a wake-up)
	// and never repairs a dead writer's transaction: it waits for a
	// writable process to do so, or fails after ReadTimeout with
	// ErrWriterStuck. Begin, Check and CopyTo fail with ErrReadOnly.
	ReadOnly bool
}

// DefaultReadTimeout is the read wait bound when Options.ReadTimeout is 0:
// far longer than any transaction a healthy writer holds (they take
// microseconds to milliseconds), short enough that a reader facing a
// stopped writer reports it instead of seeming to hang.
const DefaultReadTimeout = 10 * time.Second

// File is an open state file. Read methods are safe for any number of
// goroutines at once and take no lock; writes go through Begin. A File must
// not be used after Close; Close must not run while other goroutines use
// the File.
type File struct {
	path string
	fd   int
	mem  []byte // the whole reserved mapping; only [0, Size()) is backed by the file
	opts Options

	// dir and name locate the file for a File opened with OpenIn (dir is
	// its own duplicate of the directory descriptor, closed by Close);
	// dir is nil for Open.
	dir  *statedir.Dir
	name string

	// wlock is the in-process writer lock, a channel of capacity one so
	// that waiting for it can honour a context: holding it means having
	// sent to it (lockProcess) and releasing it means receiving
	// (unlockProcess). It serializes writers in this process, is held for
	// the life of a Tx, and guards the following.
	wlock  chan struct{}
	closed bool // set by Close
}

// Open opens the state file at path, creating and initializing it if it
// does not exist (unless opts.NoCreate or opts.ReadOnly). A file that is
// not a valid state file of this format version is rejected with an error
// wrapping ErrCorrupt; it is never modified. Open trusts the path: it
// follows symbolic links and accepts any owner. On a machine shared with
// other users, use OpenIn.
func Open(path string, opts Options) (*File, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fd, err := openOrCreate(path, opts)
	if err != nil {
		return nil, err
	}
	f, err := mapFile(path, fd, opts)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return f, nil
}

// OpenIn opens the state file name in the checked directory dir, creating
// and initializing it if it does not exist (unless opts.NoCreate or
// opts.ReadOnly), like Open but safe in a directory other users can reach:
// the file is opened relative to the directory's descriptor without
// following a symbolic link, and refused (an error wrapping
// statedir.ErrUnsafe that says why and how to fix it) unless it is a
// regular file that its owner, trusted by dir, alone can write; a new file
// is written under a temporary name and linked into place relative to the
// same descriptor. The File keeps its own duplicate of dir's descriptor
// (for CheckPath), so dir may be closed after OpenIn returns. Path returns
// the directory's path joined with name.
func OpenIn(dir *statedir.Dir, name string, opts Options) (*File, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	own, err := dir.Clone()
	if err != nil {
		return nil, fmt.Errorf("shm: %w", err)
	}
	fd, err := openOrCreateIn(own, name, opts)
	if err != nil {
		own.Close()
		return nil, err
	}
	f, err := mapFile(own.Join(name), fd, opts)
	if err != nil {
		unix.Close(fd)
		own.Close()
		return nil, err
	}
	f.dir, f.name = own, name
	return f, nil
}

// withDefaults checks the options and fills in their defaults.
func (opts Options) withDefaults() (Options, error) {
	if opts.FileMode == 0 {
		opts.FileMode = 0o600
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxSize < 2*PageSize || opts.MaxSize > maxMaxSize {
		return opts, fmt.Errorf("shm: MaxSize %d out of range [%d, %d]", opts.MaxSize, 2*PageSize, int64(maxMaxSize))
	}
	switch {
	case opts.ReadTimeout == 0:
		opts.ReadTimeout = DefaultReadTimeout
	case opts.ReadTimeout < 0:
		return opts, fmt.Errorf("shm: ReadTimeout %v is negative", opts.ReadTimeout)
	}
	return opts, nil
}

// openFlag is the access mode of the state file's descriptor.
func (opts Options) openFlag() int {
	if opts.ReadOnly {
		return unix.O_RDONLY
	}
	return unix.O_RDWR
}

// mayCreate reports whether Open may create a missing file.
func (opts Options) mayCreate() bool { return !opts.NoCreate && !opts.ReadOnly }

func openOrCreate(path string, opts Options) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, err := unix.Open(path, opts.openFlag()|unix.O_CLOEXEC, 0)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.ENOENT) || !opts.mayCreate() || attempt > 3 {
			return -1, fmt.Errorf("shm: open %s: %w", path, &os.PathError{Op: "open", Path: path, Err: err})
		}
		if err := create(path, opts); err != nil {
			return -1, err
		}
	}
}

func openOrCreateIn(dir *statedir.Dir, name string, opts Options) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, err := dir.OpenFD(name, opts.openFlag(), 0)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, os.ErrNotExist) || !opts.mayCreate() || attempt > 3 {
			return -1, fmt.Errorf("shm: open state file: %w", err)
		}
		if err := createIn(dir, name, opts); err != nil {
			return -1, err
		}
	}
}

// mapFile validates the header of an open file and maps it. The header is
// read before the file's size: a writer extends the file before it
// records the larger size in the header, so a size read first may be
// older than the header read after it, and a file growing under Open
// would look truncated.
func mapFile(path string, fd int, opts Options) (*File, error) {
	h := make([]byte, PageSize)
	n, err := unix.Pread(fd, h, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: read header of %s: %w", path, err)
	}
	if n < PageSize {
		return nil, fmt.Errorf("shm: %s: %w: file is %d bytes, shorter than its header", path, ErrCorrupt, n)
	}
	if testHookHeaderRead != nil {
		testHookHeaderRead()
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: stat %s: %w", path, err)
	}
	maxSize, err := validateHeader(h, uint64(st.Size))
	if err != nil {
		return nil, fmt.Errorf("shm: %s: %w", path, err)
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	if opts.ReadOnly {
		prot = unix.PROT_READ
	}
	mem, err := unix.Mmap(fd, 0, int(maxSize), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: map %s (%d bytes reserved): %w", path, maxSize, err)
	}
	return &File{path: path, fd: fd, mem: mem, opts: opts, wlock: make(chan struct{}, 1)}, nil
}

// testHookHeaderRead, when set by a test, runs between the two reads of
// mapFile (the header and the file's size).
var testHookHeaderRead func()

// validateHeader checks a header read from a file of fileSize bytes and
// returns the mapping size it asks for.
func validateHeader(h []byte, fileSize uint64) (uint64, error) {
	if string(h[offMagic:offMagic+8]) != Magic {
		return 0, fmt.Errorf("%w: not a whycache state file (bad magic)", ErrCorrupt)
	}
	if m := binary.LittleEndian.Uint32(h[offEndian:]); m != endianMarker {
		return 0, fmt.Errorf("%w: written on a machine of other byte order (marker %#x)", ErrCorrupt, m)
	}
	if v := binary.LittleEndian.Uint32(h[offVersion:]); v != FormatVersion {
		return 0, fmt.Errorf("%w: unsupported format version %d (this build reads %d)", ErrCorrupt, v, FormatVersion)
	}
	if p := binary.LittleEndian.Uint32(h[offPageSize:]); p != PageSize {
		return 0, fmt.Errorf("%w: page size %d, expected %d", ErrCorrupt, p, PageSize)
	}
	if hs := binary.LittleEndian.Uint32(h[offHeaderSize:]); hs != HeapStart {
		return 0, fmt.Errorf("%w: header size %d, expected %d", ErrCorrupt, hs, HeapStart)
	}
	maxSize := binary.LittleEndian.Uint64(h[offMaxSize:])
	size := binary.LittleEndian.Uint64(h[offSize:])
	bump := binary.LittleEndian.Uint64(h[offBump:])
	switch {
	case maxSize < 2*PageSize || maxSize > maxMaxSize || maxSize%PageSize != 0:
		return 0, fmt.Errorf("%w: reserved size %d out of range", ErrCorrupt, maxSize)
	case size < PageSize || size > maxSize || size%PageSize != 0:
		return 0, fmt.Errorf("%w: recorded size %d invalid", ErrCorrupt, size)
	case size > fileSize:
		return 0, fmt.Errorf("%w: file truncated: header says %d bytes, file has %d", ErrCorrupt, size, fileSize)
	case bump < HeapStart || bump > size || bump%Align != 0:
		return 0, fmt.Errorf("%w: heap end %d outside [%d, %d]", ErrCorrupt, bump, HeapStart, size)
	}
	return maxSize, nil
}

// Path returns the path the file was opened at.
func (f *File) Path() string { return f.path }

// ReadOnly reports whether the file was opened with Options.ReadOnly.
func (f *File) ReadOnly() bool { return f.opts.ReadOnly }

// MaxSize returns the largest size the file may grow to.
func (f *File) MaxSize() uint64 { return uint64(len(f.mem)) }

// Size returns the number of bytes of the file that readers may access.
// It only grows.
func (f *File) Size() uint64 { return atomicLoad(f.mem, offSize) }

// FileSize returns the size of the file on disk, from fstat.
func (f *File) FileSize() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, fmt.Errorf("shm: stat %s: %w", f.path, err)
	}
	return st.Size, nil
}

// Inode returns the device and inode numbers of the open file, which tell
// whether the path still names this file.
func (f *File) Inode() (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, 0, fmt.Errorf("shm: stat %s: %w", f.path, err)
	}
	return uint64(st.Dev), st.Ino, nil
}

// Close unmaps and closes the file. Close waits for an open transaction of
// this File to end; it must not be called while other goroutines read.
func (f *File) Close() error {
	f.wlock <- struct{}{}
	defer f.unlockProcess()
	if f.closed {
		return nil
	}
	f.closed = true
	err := unix.Munmap(f.mem)
	f.mem = nil
	if cerr := unix.Close(f.fd); err == nil {
		err = cerr
	}
	if f.dir != nil {
		if cerr := f.dir.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("shm: close %s: %w", f.path, err)
	}
	return nil
}

// growLocked makes at least need bytes of the file accessible, extending
// it on disk with fallocate. It grows by an eighth of the current size at
// least (so growth is amortized), falling back to exactly need when the
// disk cannot hold more. The caller holds the writer lock.
func (f *File) growLocked(need uint64) error {
	size := f.Size()
	if need <= size {
		return nil
	}
	max := f.MaxSize()
	if need > max {
		return fmt.Errorf("%w: need %d bytes, MaxSize is %d", ErrNoSpace, need, max)
	}
	need = roundUp(need, PageSize)
	want := roundUp(size+size/8, 1<<20)
	if want < need {
		want = need
	}
	if want > max {
		want = max
	}
	err := unix.Fallocate(f.fd, 0, int64(size), int64(want-size))
	if err != nil && want > need {
		want = need
		err = unix.Fallocate(f.fd, 0, int64(size), int64(want-size))
	}
	if err != nil {
		return fmt.Errorf("%w: growing %s to %d bytes: %w", ErrNoSpace, f.path, want, err)
	}
	atomicStore(f.mem, offSize, want)
	return nil
}

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }
