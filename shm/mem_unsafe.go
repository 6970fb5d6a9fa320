package shm

import (
	"sync/atomic"
	"unsafe"
)

// This file holds the package's only uses of unsafe: turning an aligned
// offset inside the mapping into a *uint64 for atomic access. Callers
// guarantee off+8 <= len(mem) and off%8 == 0.

func word(mem []byte, off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&mem[off : off+8][0]))
}

func atomicLoad(mem []byte, off uint64) uint64 { return atomic.LoadUint64(word(mem, off)) }

func atomicStore(mem []byte, off uint64, v uint64) { atomic.StoreUint64(word(mem, off), v) }
