// Package workload generates the benchmark data set shared by every system
// in the comparison: keys of KeyLen random bytes and values of ValueLen
// bytes, the same keys as the prefixtree benchmarks and
// whycache-readbench (PCG seeded with 1, one byte per Uint32), so figures
// from all three are comparable.
package workload

import (
	"math/bits"
	"math/rand/v2"
)

// Sizes of the workload items.
const (
	KeyLen   = 16
	ValueLen = 100
	// HotKeys is the size of the hot set: the first HotKeys workload keys.
	HotKeys = 1000
)

// Keys returns n workload keys packed end to end: key i is
// keys[i*KeyLen:(i+1)*KeyLen]. The result is freshly allocated and owned by
// the caller.
func Keys(n int) []byte {
	r := rand.New(rand.NewPCG(1, 1))
	keys := make([]byte, n*KeyLen)
	for i := range keys {
		keys[i] = byte(r.Uint32())
	}
	return keys
}

// Key returns key i of packed keys (a subslice with its capacity clipped,
// so appending to it never overwrites the next key).
func Key(keys []byte, i int) []byte {
	return keys[i*KeyLen : (i+1)*KeyLen : (i+1)*KeyLen]
}

// Count is the number of keys packed in keys.
func Count(keys []byte) int { return len(keys) / KeyLen }

// FillValue overwrites v with bytes derived from version, so that every
// version of a value differs from the others. The initial load uses
// version 0.
func FillValue(v []byte, version uint64) {
	for i := range v {
		v[i] = byte(i) ^ byte(version>>(8*(i%8)))
	}
}

// Picker draws uniformly random indexes in [0, n). It is not safe for
// concurrent use.
type Picker struct {
	rng *rand.PCG
	n   uint64
}

// NewPicker returns a Picker over [0, n) seeded with seed. n must be
// positive.
func NewPicker(n int, seed uint64) *Picker {
	return &Picker{rng: rand.NewPCG(seed, ^seed), n: uint64(n)}
}

// Next returns the next index (Lemire's multiply-shift, no division).
func (p *Picker) Next() int {
	i, _ := bits.Mul64(p.rng.Uint64(), p.n)
	return int(i)
}

// Batch is a batch of writes with fixed-size keys and values packed end to
// end, the form every system's bulk writer takes.
type Batch struct {
	Keys   []byte // Len() keys of KeyLen bytes
	Values []byte // Len() values of ValueLen bytes
}

// Len is the number of items in the batch.
func (b *Batch) Len() int { return len(b.Keys) / KeyLen }

// Key returns the key of item i.
func (b *Batch) Key(i int) []byte { return Key(b.Keys, i) }

// Value returns the value of item i.
func (b *Batch) Value(i int) []byte {
	return b.Values[i*ValueLen : (i+1)*ValueLen : (i+1)*ValueLen]
}

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() { b.Keys, b.Values = b.Keys[:0], b.Values[:0] }

// Add appends one item; the value is filled with FillValue(version).
func (b *Batch) Add(key []byte, version uint64) {
	b.Keys = append(b.Keys, key...)
	n := len(b.Values)
	b.Values = append(b.Values, make([]byte, ValueLen)...)
	FillValue(b.Values[n:], version)
}
