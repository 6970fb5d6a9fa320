package shm

// File format constants.
const (
	// Magic is the first eight bytes of every state file.
	Magic = "WHYCACHE"
	// FormatVersion is the layout version this package reads and writes.
	FormatVersion = 1
	// endianMarker is stored little-endian; a big-endian writer would have
	// stored it reversed.
	endianMarker = 0x01020304

	// PageSize is the size of the header and the growth granularity.
	PageSize = 4096
	// HeapStart is the offset of the first heap block.
	HeapStart = PageSize
	// Align is the alignment and granularity of every block.
	Align = 8

	// UserRoots is the number of 64-bit root words the user of the file
	// owns (RootOffset).
	UserRoots = 32

	// DefaultMaxSize is the largest a file may grow when Options.MaxSize is
	// zero. It reserves address space, not memory.
	DefaultMaxSize = 64 << 30
	// maxMaxSize bounds MaxSize read from a file header.
	maxMaxSize = 1 << 46
)

// Header field offsets. All integers are little-endian. Fields written by
// writers after creation are only changed inside a transaction; the seqlock
// counter and size are accessed atomically.
const (
	offMagic      = 0  // [8]byte Magic
	offVersion    = 8  // u32 FormatVersion
	offEndian     = 12 // u32 endianMarker
	offPageSize   = 16 // u32 PageSize
	offHeaderSize = 20 // u32 HeapStart
	offMaxSize    = 24 // u64 reserved mapping size, fixed at creation
	offCreated    = 32 // u64 unix nanoseconds of creation

	// Cache line 1: what readers load on every read.
	offSeq     = 64 // u64 seqlock counter: odd while a writer changes reachable memory; bit 63 = retired
	offSize    = 72 // u64 bytes of the file that are allocated on disk (readers bounds-check against it)
	offWaiters = 80 // u64 readers sleeping on the counter (futex); writers wake them when it is non-zero

	// Writer state: only the lock holder touches these.
	offWriterPID    = 128 // u64 pid of the writer with a transaction in progress, 0 when none
	offJournalBytes = 136 // u64 bytes of valid undo records in the journal chain
	offJournalHead  = 144 // u64 offset of the first journal chunk, 0 when none yet
	offBump         = 152 // u64 end of the heap: every byte in [HeapStart, bump) is in a block
	offRecoveries   = 160 // u64 number of times a dead writer's transaction was repaired
	offCommits      = 168 // u64 number of committed transactions

	offRoots     = 256                         // [UserRoots]u64 user roots
	offFreeHeads = offRoots + 8*UserRoots      // [numClasses]u64 free list heads
	maxClasses   = 256                         // room reserved for free list heads
	offFreeMask  = offFreeHeads + 8*maxClasses // [maxClasses/64]u64: bit c set iff free list c is non-empty
)

// Seqlock counter bits.
const (
	seqWriting = 1       // set while a writer changes reachable memory
	seqRetired = 1 << 63 // set once the file was retired
	seqStep    = 2       // a write section advances the counter by this
)

// RootOffset returns the offset of user root word i (0 <= i < UserRoots).
// Roots are changed with Tx.Put64 and read with Uint64 like any word.
func RootOffset(i int) uint64 { return offRoots + 8*uint64(i) }
