package shm

// loadFence orders every load before it ahead of every load after it. A
// seqlock reader needs it between the plain loads of its read and the load
// of the counter that validates them: arm64 may otherwise satisfy those
// plain loads after the (acquire) load of the counter.
//
//go:noescape
func loadFence()
