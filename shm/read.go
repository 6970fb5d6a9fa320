package shm

import (
	"encoding/binary"
	"fmt"
	"time"
)

// ReadBegin starts a lock-free read and returns the token to pass to
// ReadValid. It waits while a writer is changing reachable memory (a few
// microseconds for ordinary transactions); if the writer died, it repairs
// the file first. It returns an error wrapping ErrRetired once the file was
// retired, and one wrapping ErrWriterStuck when a live writer's write
// section has not ended within Options.ReadTimeout (the message names the
// writer's pid and state).
func (f *File) ReadBegin() (uint64, error) {
	s := atomicLoad(f.mem, offSeq)
	if s&(seqWriting|seqRetired) == 0 {
		return s, nil
	}
	return f.readBeginSlow()
}

// TryReadBegin is the fast path of ReadBegin, small enough to be inlined:
// it returns the token and true when no writer is changing memory and the
// file is not retired; otherwise the caller calls ReadBegin.
func (f *File) TryReadBegin() (uint64, bool) {
	s := atomicLoad(f.mem, offSeq)
	return s, s&(seqWriting|seqRetired) == 0
}

// ReadValid reports whether no writer changed reachable memory since the
// ReadBegin that returned seq. Everything read in between must be discarded
// when it returns false.
func (f *File) ReadValid(seq uint64) bool {
	loadFence()
	return atomicLoad(f.mem, offSeq) == seq
}

// spinFor is how long a reader spins on a writing counter before it sleeps:
// about the length of a short transaction, and well below the time a
// sleeping thread takes to wake up.
const spinFor = 30 * time.Microsecond

// deadWriterCheckInterval is how long a reader waits on a writing counter
// before it checks whether the writer is still alive.
const deadWriterCheckInterval = 2 * time.Millisecond

// readBeginSlow waits for the writer to end its write section: it spins
// for spinFor (short transactions end within microseconds), then sleeps on the
// counter with futex(2), announcing itself in the waiters word so that the
// writer wakes it as soon as the section ends. The sleep is bounded so that
// the reader can check, every deadWriterCheckInterval, whether the writer
// died, and repair the file if so. When the counter has held one odd value
// for Options.ReadTimeout, the writer makes no progress and the reader
// gives up with an error wrapping ErrWriterStuck.
//
// A read-only File cannot write the waiters word or repair: it sleeps on
// the counter for bounded, growing times (readOnlySleepMin to
// readOnlySleepMax; a writer wakes it early only if a writable reader is
// waiting too) and leaves a dead writer's transaction to a writable
// process, reporting it after ReadTimeout like a stuck one.
func (f *File) readBeginSlow() (uint64, error) {
	var (
		section   uint64    // the odd counter value of the write section waited on
		since     time.Time // when this reader first saw that section
		lastCheck time.Time // when it last checked for a dead writer
		sleep     = readOnlySleepMin
	)
	readOnly := f.opts.ReadOnly
	for i := 0; ; i++ {
		s := atomicLoad(f.mem, offSeq)
		if s&seqRetired != 0 {
			return 0, fmt.Errorf("shm: %s: %w", f.path, ErrRetired)
		}
		if s&seqWriting == 0 {
			return s, nil
		}
		if i%64 != 63 {
			continue
		}
		now := time.Now()
		if since.IsZero() || s != section {
			// A new write section: the writer made progress.
			section, since, lastCheck, sleep = s, now, now, readOnlySleepMin
			continue
		}
		waited := now.Sub(since)
		if waited < spinFor {
			continue
		}
		if !readOnly && (now.Sub(lastCheck) > deadWriterCheckInterval || waited >= f.opts.ReadTimeout) {
			if err := f.repairIfWriterDead(); err != nil {
				return 0, err
			}
			lastCheck = now
			if atomicLoad(f.mem, offSeq) != s {
				continue
			}
		}
		if waited >= f.opts.ReadTimeout {
			return 0, f.stuckError(waited)
		}
		left := f.opts.ReadTimeout - waited
		if readOnly {
			futexWait(f.mem, offSeq, uint32(s), min(sleep, left))
			sleep = min(2*sleep, readOnlySleepMax)
			continue
		}
		atomicAdd(f.mem, offWaiters, 1)
		if atomicLoad(f.mem, offSeq) == s {
			futexWait(f.mem, offSeq, uint32(s), min(deadWriterCheckInterval/2, left))
		}
		atomicAdd(f.mem, offWaiters, -1)
	}
}

// The sleeps of a read-only reader waiting on a write section: the first
// is about a short transaction, they double up to the last, which bounds
// how late such a reader sees the section end.
const (
	readOnlySleepMin = 50 * time.Microsecond
	readOnlySleepMax = time.Millisecond
)

// publishSeq stores a new counter value and wakes the readers sleeping on
// the old one. A reader announces itself before it checks the counter and
// sleeps only if the counter still holds the value it saw, so either it
// sees the new value or the writer sees it waiting.
func (f *File) publishSeq(s uint64) {
	atomicStore(f.mem, offSeq, s)
	if atomicLoad(f.mem, offWaiters) != 0 {
		futexWake(f.mem, offSeq)
	}
}

// Mem returns the whole reserved mapping, for read paths that do their own
// bounds checks against Size. Bytes at or past Size must not be touched.
func (f *File) Mem() []byte { return f.mem }

// Uint64 returns the little-endian word at off, or 0 if off+8 is past Size.
// Inside a read it may return garbage that ReadValid later rejects.
func (f *File) Uint64(off uint64) uint64 {
	if off+8 > f.Size() || off+8 < off {
		return 0
	}
	return binary.LittleEndian.Uint64(f.mem[off:])
}

// Bytes returns the mapped bytes [off, off+n), or nil if the range is past
// Size. The slice aliases the mapping: a reader must copy what it keeps and
// must not write through it.
func (f *File) Bytes(off, n uint64) []byte {
	end := off + n
	if end > f.Size() || end < off {
		return nil
	}
	return f.mem[off:end:end]
}

// Root returns user root word i, read atomically.
func (f *File) Root(i int) uint64 {
	if i < 0 || i >= UserRoots {
		return 0
	}
	return atomicLoad(f.mem, RootOffset(i))
}

// Retired reports whether the file was retired.
func (f *File) Retired() bool { return atomicLoad(f.mem, offSeq)&seqRetired != 0 }

// Stats describes a File.
type Stats struct {
	Size       uint64 // accessible bytes of the file
	HeapBytes  uint64 // bytes of the heap in blocks (used or free)
	Commits    uint64 // transactions committed since creation
	Recoveries uint64 // dead writers' transactions repaired since creation
	Seq        uint64 // seqlock counter
}

// Stats returns counters from the header, read without locking.
func (f *File) Stats() Stats {
	m := f.mem
	return Stats{
		Size:       f.Size(),
		HeapBytes:  binary.LittleEndian.Uint64(m[offBump:]) - HeapStart,
		Commits:    binary.LittleEndian.Uint64(m[offCommits:]),
		Recoveries: binary.LittleEndian.Uint64(m[offRecoveries:]),
		Seq:        atomicLoad(m, offSeq),
	}
}
