package shm

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the package's only uses of unsafe: turning an aligned
// offset inside the mapping into a *uint64 for atomic access, or into an
// address for futex(2). Callers guarantee off+8 <= len(mem) and off%8 == 0.

func word(mem []byte, off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&mem[off : off+8][0]))
}

func atomicLoad(mem []byte, off uint64) uint64 { return atomic.LoadUint64(word(mem, off)) }

func atomicStore(mem []byte, off uint64, v uint64) { atomic.StoreUint64(word(mem, off), v) }

func atomicAdd(mem []byte, off uint64, delta int64) {
	atomic.AddUint64(word(mem, off), uint64(delta))
}

// futex(2) operations (linux/futex.h).
const (
	futexOpWait = 0
	futexOpWake = 1
)

// The futex calls use the low 32 bits of the little-endian word at off.
// They are not FUTEX_PRIVATE: the mapping is shared between processes, and
// the kernel keys the wait queue on the file page.

// futexWait sleeps while the low half of the word at off equals val, until
// a futexWake, a signal or the timeout.
func futexWait(mem []byte, off uint64, val uint32, timeout time.Duration) {
	ts := unix.NsecToTimespec(timeout.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word(mem, off))), futexOpWait, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWake wakes every process sleeping in futexWait on the word at off.
func futexWake(mem []byte, off uint64) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word(mem, off))), futexOpWake, uintptr(1<<31-1), 0, 0, 0)
}
