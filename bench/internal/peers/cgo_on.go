//go:build cgo

package peers

// cgoEnabled is whether this binary was built with cgo.
const cgoEnabled = true
