//go:build !arm64

package shm

// loadFence orders earlier loads before later ones. On amd64 (and other
// total-store-order machines) loads are never reordered with loads, and
// the atomic load that follows also keeps the compiler from moving them, so
// it is empty.
func loadFence() {}
