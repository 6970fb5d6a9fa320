// Package shm implements the state file that every process on a machine
// maps: a growable, crash-safe heap of blocks addressed by offsets, with one
// writer at a time per file and lock-free readers.
//
// # Layout
//
// A state file starts with a one-page header (magic, format version,
// endianness marker, page size, sizes, the seqlock counter, the writer's
// in-progress marker, allocator roots and 32 user root words). The heap
// follows. Everything in the file refers to other things by offset from the
// start of the file; offset 0 is nil.
//
// The file is mapped once over a large reserved range (Options.MaxSize) and
// grown underneath the mapping with fallocate, so base addresses never move,
// readers never wait for growth, and a full disk is an error when the file
// grows rather than a SIGBUS later.
//
// # Readers
//
// Readers take no lock. A reader calls ReadBegin, reads what it needs
// (copying values out), and calls ReadValid; if a writer changed anything in
// between, ReadValid reports false and the reader retries. Because a writer
// may reuse memory a reader is looking at, every read must bounds-check the
// offsets it follows (Size, Bytes, Uint64 do) and bound its loops; garbage is
// rejected by ReadValid before it is used.
//
// No read waits without end: a reader that finds a write section open
// spins, then sleeps on the counter, checks every few milliseconds whether
// the writer died (and repairs if so), and gives up after
// Options.ReadTimeout (DefaultReadTimeout, 10 s) on one section that does
// not end, with an error wrapping ErrWriterStuck that names the writer's
// pid and what /proc says of it (stopped, running, sleeping, gone).
//
// # Writers
//
// Begin takes an in-process lock and a cross-process open-file-description
// lock that the kernel releases when its holder dies; BeginContext waits for
// both under a context and gives up, naming the holder, when it is done. Every change to memory
// that readers can reach goes through a Tx method that first records the old
// bytes in an undo journal kept inside the file; new blocks are filled
// through Tx.Fresh without journaling. The whole transaction is one seqlock
// write section, so readers see all of it or none of it. If a writer dies,
// the next writer (or a reader that finds the counter stuck) rolls the
// journal back and rebuilds the allocator from the blocks reachable from the
// roots (Options.Walk), so a crash at any instant leaves a usable state that
// Check verifies.
//
// # A machine shared with other users
//
// Open trusts its path: it follows symbolic links and accepts any owner.
// OpenIn opens (and creates) the state file relative to a directory checked
// by internal/statedir, never following a symbolic link, and refuses a file
// that a user the caller does not trust owns or can write; a process that
// keeps a File open learns from CheckPath whether the path still names it
// (current, removed or replaced). With Options.ReadOnly a File is opened
// O_RDONLY and mapped PROT_READ, so read permission is enough and nothing
// is ever written: reads are as fast, a reader meeting a write section
// waits with bounded sleeps, and a dead writer's transaction is left for a
// writable process to repair (or reported after ReadTimeout).
package shm

import _ "github.com/whycache/whycache/internal/linux" // Linux only: a build for another system stops there
