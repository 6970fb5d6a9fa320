package prefixtree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/internal/statedir"
	"github.com/whycache/whycache/shm"
)

// Options configure Open.
type Options struct {
	// MaxSize is the largest the state file may grow (see shm.Options).
	MaxSize int64
	// FileMode is the permission of a created file; 0 means 0600.
	FileMode os.FileMode
	// NoCreate makes Open fail instead of creating a missing file.
	NoCreate bool
	// ReadTimeout bounds how long a read waits for a writer's batch that
	// does not end (see shm.Options.ReadTimeout): every read path (Get,
	// AppendGet, GetEntry, cursors and iterators, CommittedMeta, Warm)
	// then fails with an error wrapping ErrWriterStuck that names the
	// writer. 0 means shm.DefaultReadTimeout.
	ReadTimeout time.Duration
	// ReadOnly opens the map for reading only (see shm.Options.ReadOnly):
	// read permission on the file is enough, nothing is ever written, a
	// missing file is not created, and reads are as fast as on a writable
	// map. Begin, BeginContext and Check fail with shm.ErrReadOnly.
	ReadOnly bool
}

// Tree is an open map. Reads (Get, AppendGet, cursors, Len, ...) are safe
// from any number of goroutines and take no lock; writes go through Begin.
// A Tree must not be used after Close, and Close must not run concurrently
// with other methods.
type Tree struct {
	f *shm.File
}

// Open opens (creating if needed) the state file at path. Like shm.Open it
// trusts the path; on a machine shared with other users, use OpenIn.
func Open(path string, opts Options) (*Tree, error) {
	return open(opts, func(so shm.Options) (*shm.File, error) { return shm.Open(path, so) })
}

// OpenIn opens (creating if needed) the state file name in the checked
// directory dir, with the checks of shm.OpenIn: no symbolic link is
// followed and a file another user could have planted or could change is
// refused with an error wrapping statedir.ErrUnsafe. dir may be closed once
// OpenIn returns.
func OpenIn(dir *statedir.Dir, name string, opts Options) (*Tree, error) {
	return open(opts, func(so shm.Options) (*shm.File, error) { return shm.OpenIn(dir, name, so) })
}

// open checks opts, opens the state file with openFile and checks the map
// layout.
func open(opts Options, openFile func(shm.Options) (*shm.File, error)) (*Tree, error) {
	if opts.MaxSize > MaxFileSize {
		return nil, fmt.Errorf("prefixtree: MaxSize %d is above the %d bytes a map can address", opts.MaxSize, uint64(MaxFileSize))
	}
	so := shm.Options{
		MaxSize:     opts.MaxSize,
		FileMode:    opts.FileMode,
		NoCreate:    opts.NoCreate,
		Walk:        walk,
		ReadTimeout: opts.ReadTimeout,
		ReadOnly:    opts.ReadOnly,
	}
	so.InitRoots[rootFormat] = treeFormat
	f, err := openFile(so)
	if err != nil {
		return nil, err
	}
	if f.MaxSize() > MaxFileSize {
		f.Close()
		return nil, fmt.Errorf("prefixtree: %s: reserved size %d is above the %d bytes a map can address", f.Path(), f.MaxSize(), uint64(MaxFileSize))
	}
	if err := initFormat(f); err != nil {
		f.Close()
		return nil, err
	}
	return &Tree{f: f}, nil
}

// initFormat checks the map layout word of f. Files Open creates carry it
// from the start; a state file created without it (by shm alone) gets it
// in a transaction of its own while it holds no map yet, so that every map
// that holds anything was marked before it did. A read-only File cannot
// mark it, and reads such a file as the empty map it is. A map of layout
// version 2 holds no expiring entry and is otherwise the same: it is read
// as it is, and marked version 3 when f may write (a build that reads
// only version 2 then refuses it instead of misreading expiring entries).
func initFormat(f *shm.File) error {
	format := f.Root(rootFormat)
	if format == treeFormat || (format == treeFormatV2 && f.ReadOnly()) {
		return nil
	}
	if format != treeFormatV2 && (format != 0 || f.Root(rootTable) != 0 || f.Root(rootTree) != 0) {
		return fmt.Errorf("prefixtree: %s: %w: map layout %#x, this build reads %#x", f.Path(), ErrCorrupt, format, treeFormat)
	}
	if f.ReadOnly() {
		return nil
	}
	tx, err := f.Begin()
	if err != nil {
		if errors.Is(err, shm.ErrRetired) {
			return nil
		}
		return err
	}
	if r := f.Root(rootFormat); r == 0 || r == treeFormatV2 {
		tx.Put64(shm.RootOffset(rootFormat), treeFormat)
	}
	return tx.Commit()
}

// File returns the underlying state file.
func (t *Tree) File() *shm.File { return t.f }

// Close closes the state file.
func (t *Tree) Close() error { return t.f.Close() }

func (t *Tree) view() view {
	return view{m: t.f.Mem(), size: t.f.Size()}
}

// read runs fn as a lock-free read, retrying until no writer intervened,
// and returns the seqlock token of the valid read. fn reads through the view
// it gets; if the view went bad during a valid read, the structure is
// corrupt.
func (t *Tree) read(fn func(v *view)) (uint64, error) {
	for {
		seq, err := t.f.ReadBegin()
		if err != nil {
			return 0, err
		}
		v := t.view()
		fn(&v)
		if t.f.ReadValid(seq) {
			if v.bad {
				return 0, fmt.Errorf("prefixtree: %w: read of %s went out of bounds", ErrCorrupt, t.f.Path())
			}
			return seq, nil
		}
	}
}

// AppendGet appends the value of key to dst and reports whether the key
// exists. An expired entry does not exist (see Batch.PutExpiring). It
// allocates only if dst lacks capacity; it neither locks nor makes system
// calls unless it meets a writer's batch. Errors wrap ErrCorrupt,
// shm.ErrRetired or ErrWriterStuck.
func (t *Tree) AppendGet(dst, key []byte) ([]byte, bool, error) {
	out, _, found, err := t.AppendGetExpiry(dst, key)
	return out, found, err
}

// AppendGetExpiry is AppendGet also returning the entry's expiry, in
// nanoseconds since the Unix epoch (0: it never expires).
func (t *Tree) AppendGetExpiry(dst, key []byte) ([]byte, int64, bool, error) {
	h := xxhash.Sum64(key)
	f := t.f
	for {
		seq, ready := f.TryReadBegin()
		if !ready {
			var err error
			if seq, err = f.ReadBegin(); err != nil {
				return dst, 0, false, err
			}
		}
		if out, exp, found, valid, err := t.lookupOnce(seq, dst, key, h); valid {
			return out, exp, found, err
		}
	}
}

// TryAppendGetExpiry is AppendGetExpiry that never waits: busy is set,
// and dst returned unchanged, when a writer is inside a batch (where
// AppendGetExpiry would wait for it) or changed the file during the
// lookup. For event loops, which must not block; the caller reads again
// with AppendGetExpiry elsewhere. Errors wrap ErrCorrupt.
func (t *Tree) TryAppendGetExpiry(dst, key []byte) (out []byte, exp int64, found, busy bool, err error) {
	seq, ready := t.f.TryReadBegin()
	if !ready {
		return dst, 0, false, true, nil
	}
	out, exp, found, valid, err := t.lookupOnce(seq, dst, key, xxhash.Sum64(key))
	if !valid {
		return dst, 0, false, true, nil
	}
	return out, exp, found, false, err
}

// lookupOnce looks key (of hash h) up after the read section seq began:
// valid is false when a writer changed the file meanwhile (what was read
// is then discarded, dst returned unchanged).
func (t *Tree) lookupOnce(seq uint64, dst, key []byte, h uint64) (out []byte, exp int64, found, valid bool, err error) {
	f := t.f
	out, exp, found, ok := lookup(f.Mem(), f.Size(), dst, key, h)
	if !f.ReadValid(seq) {
		return dst, 0, false, false, nil
	}
	if !ok {
		return dst, 0, false, true, fmt.Errorf("prefixtree: %w: lookup in %s went out of bounds", ErrCorrupt, f.Path())
	}
	return out, exp, found, true, nil
}

// lookup probes the hash table for key and returns its value appended to
// dst and its expiry; an expired entry is not found. ok is false if it met
// an offset outside the file (garbage from a racing writer, or corruption).
func lookup(m []byte, size uint64, dst, key []byte, h uint64) (out []byte, exp int64, found, ok bool) {
	tab := binary.LittleEndian.Uint64(m[shm.RootOffset(rootTable):])
	if tab == 0 {
		return dst, 0, false, true
	}
	if tab+tableHeader > size || tab+tableHeader < tab {
		return dst, 0, false, false
	}
	capacity := binary.LittleEndian.Uint64(m[tab:])
	if capacity == 0 || capacity&(capacity-1) != 0 || capacity > size || tab+tableSize(capacity) > size {
		return dst, 0, false, false
	}
	slots := m[tab+tableHeader : tab+tableSize(capacity)]
	mask := capacity - 1
	klen := uint64(len(key))
	for i, n := h&mask, uint64(0); n < capacity; i, n = (i+1)&mask, n+1 {
		s := binary.LittleEndian.Uint64(slots[i*8:])
		if s == 0 {
			return dst, 0, false, true
		}
		if !tagMatches(s, h) || s == slotDeleted {
			continue
		}
		off := slotOff(s)
		if es := slotSize(s); es != 0 {
			// A live entry of known size: copy the value while the header
			// and key are loaded, then check them.
			vstart, vend := off+entryHeader+klen, off+es
			if vend < vstart {
				continue // its key is shorter than ours
			}
			if vend > size {
				return dst, 0, false, false
			}
			out = append(dst, m[vstart:vend]...)
			kw := uint64(binary.LittleEndian.Uint32(m[off:]))
			if kw == klen && bytes.Equal(m[off+entryHeader:vstart], key) {
				return out, 0, true, true
			}
			if kw == klen|expFlag && bytes.Equal(m[off+entryHeader:vstart], key) {
				return expiring(dst, out)
			}
			continue
		}
		// A tombstone or a large entry: read the header first.
		if off+entryHeader > size {
			return dst, 0, false, false
		}
		kw := uint64(binary.LittleEndian.Uint32(m[off:]))
		if kw&^expFlag != klen {
			continue
		}
		vl := uint64(binary.LittleEndian.Uint32(m[off+4:]))
		kend := off + entryHeader + klen
		vend := kend + vl&^tombFlag
		if vend > size {
			return dst, 0, false, false
		}
		if !bytes.Equal(m[off+entryHeader:kend], key) {
			continue
		}
		if vl&tombFlag != 0 {
			return dst, 0, false, true
		}
		out = append(dst, m[kend:vend]...)
		if kw&expFlag != 0 {
			return expiring(dst, out)
		}
		return out, 0, true, true
	}
	return dst, 0, false, true
}

// expiring finishes the lookup of an expiring entry whose stored value
// (expiry, then value) was appended to dst as out: it drops the expiry
// from out and reports the entry as missing once it has expired.
func expiring(dst, out []byte) ([]byte, int64, bool, bool) {
	base := len(dst)
	if len(out)-base < expirySize {
		return dst, 0, false, false
	}
	exp := int64(binary.LittleEndian.Uint64(out[base:]))
	if time.Now().UnixNano() >= exp {
		return dst, 0, false, true
	}
	n := copy(out[base:], out[base+expirySize:])
	return out[:base+n], exp, true, true
}

// Warm reads the hash slots and entries of keys so that a batch writing
// them right after finds them in the CPU cache. Readers wait while a batch
// changes the map, so a writer that warms its keys before Begin shortens
// that wait; it changes nothing and takes no lock. It is only a hint: it
// returns the error of the wait for a writer's batch (wrapping
// ErrWriterStuck or shm.ErrRetired) without warming anything, and nil
// otherwise.
func (t *Tree) Warm(keys ...[]byte) error {
	var buf [256]byte
	f := t.f
	if _, err := f.ReadBegin(); err != nil {
		return err
	}
	m, size := f.Mem(), f.Size()
	for _, k := range keys {
		lookup(m, size, buf[:0], k, xxhash.Sum64(k))
	}
	return nil
}

// Get returns a copy of the value of key, or an error wrapping ErrNotFound
// (or, like AppendGet, ErrCorrupt, shm.ErrRetired or ErrWriterStuck).
func (t *Tree) Get(key []byte) ([]byte, error) {
	v, found, err := t.AppendGet(nil, key)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// GetEntry returns a copy of the value of key and the id of the record that
// last wrote it. For a deleted key whose tombstone is still kept, or an
// expired entry, it returns found=false with the entry's id; for an unknown
// key, id 0.
func (t *Tree) GetEntry(key []byte) (value []byte, id uint64, found bool, err error) {
	h := xxhash.Sum64(key)
	now := time.Now().UnixNano()
	_, err = t.read(func(v *view) {
		value, id, found = nil, 0, false
		off := v.findEntry(key, h)
		if off == 0 {
			return
		}
		id = v.u64(off + 8)
		val, exp, tomb := v.entryValueExp(off)
		if !tomb && (exp == 0 || exp > now) {
			value, found = append([]byte{}, val...), true
		}
	})
	return value, id, found, err
}

// findEntry returns the offset of key's entry (live or tombstone), or 0.
func (v *view) findEntry(key []byte, h uint64) uint64 {
	tab := v.u64(shm.RootOffset(rootTable))
	if tab == 0 {
		return 0
	}
	capacity := v.u64(tab)
	if capacity == 0 || capacity&(capacity-1) != 0 || !v.ok(tab, tableSize(capacity)) {
		v.bad = true
		return 0
	}
	mask := capacity - 1
	for i, n := h&mask, uint64(0); n < capacity && !v.bad; i, n = (i+1)&mask, n+1 {
		s := v.u64(tab + tableHeader + i*8)
		if s == 0 {
			return 0
		}
		if s == slotDeleted || !tagMatches(s, h) {
			continue
		}
		if off := slotOff(s); bytes.Equal(v.entryKey(off), key) {
			return off
		}
	}
	return 0
}

// counter reads a root word atomically.
func (t *Tree) counter(i int) uint64 { return t.f.Root(i) }

// Len returns the number of live keys.
func (t *Tree) Len() uint64 { return t.counter(rootLive) }

// Tombstones returns the number of tombstones kept for deleted keys.
func (t *Tree) Tombstones() uint64 { return t.counter(rootTombstones) }

// DataBytes returns the total length of live keys and values.
func (t *Tree) DataBytes() uint64 { return t.counter(rootBytes) }

// Meta returns user metadata word i (0 <= i < MetaWords), 0 if out of range.
// It reads the word as it is, which includes a value a batch in progress
// wrote and may still roll back; CommittedMeta does not.
func (t *Tree) Meta(i int) uint64 {
	if i < 0 || i >= MetaWords {
		return 0
	}
	return t.f.Root(metaRoot + i)
}

// CommittedMeta returns user metadata word i (0 if out of range) as of the
// last committed batch: it waits for a batch in progress like Get, and
// fails like Get (ErrWriterStuck, shm.ErrRetired) when that wait fails.
func (t *Tree) CommittedMeta(i int) (uint64, error) {
	for {
		seq, err := t.f.ReadBegin()
		if err != nil {
			return 0, err
		}
		v := t.Meta(i)
		if t.f.ReadValid(seq) {
			return v, nil
		}
	}
}

// IsRetired reports whether err means the state file was retired and the
// path should be reopened.
func IsRetired(err error) bool { return errors.Is(err, shm.ErrRetired) }
