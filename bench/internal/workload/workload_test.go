package workload

import (
	"bytes"
	"testing"
)

func TestKeysArePrefixStable(t *testing.T) {
	small, big := Keys(10), Keys(1000)
	if !bytes.Equal(small, big[:len(small)]) {
		t.Error("Keys(10) is not the start of Keys(1000): runs of different sizes would use different keys")
	}
	if Count(big) != 1000 || len(Key(big, 999)) != KeyLen {
		t.Errorf("Count = %d, len(Key(999)) = %d", Count(big), len(Key(big, 999)))
	}
	seen := map[string]bool{}
	for i := range Count(big) {
		seen[string(Key(big, i))] = true
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct keys of 1000", len(seen))
	}
}

func TestKeyCapacityIsClipped(t *testing.T) {
	keys := Keys(2)
	k0 := append(Key(keys, 0), 'x') // must not overwrite key 1
	if !bytes.Equal(Key(keys, 1), Keys(2)[KeyLen:]) || len(k0) != KeyLen+1 {
		t.Error("appending to key 0 changed key 1")
	}
}

func TestFillValueDiffersByVersion(t *testing.T) {
	a, b, c := make([]byte, ValueLen), make([]byte, ValueLen), make([]byte, ValueLen)
	FillValue(a, 0)
	FillValue(b, 1)
	FillValue(c, 1<<40)
	if bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(b, c) {
		t.Error("two versions have the same value")
	}
	FillValue(b, 0)
	if !bytes.Equal(a, b) {
		t.Error("FillValue is not deterministic")
	}
}

func TestBatch(t *testing.T) {
	keys := Keys(3)
	var b Batch
	for i := range 3 {
		b.Add(Key(keys, i), uint64(i))
	}
	if b.Len() != 3 {
		t.Fatalf("Len = %d, want 3", b.Len())
	}
	want := make([]byte, ValueLen)
	for i := range 3 {
		FillValue(want, uint64(i))
		if !bytes.Equal(b.Key(i), Key(keys, i)) || !bytes.Equal(b.Value(i), want) {
			t.Errorf("item %d differs from what was added", i)
		}
	}
	b.Reset()
	if b.Len() != 0 || len(b.Values) != 0 {
		t.Errorf("after Reset: Len = %d, %d value bytes", b.Len(), len(b.Values))
	}
}

func TestPickerStaysInRangeAndCoversIt(t *testing.T) {
	const n = 10
	p := NewPicker(n, 7)
	var counts [n]int
	for range 10000 {
		i := p.Next()
		if i < 0 || i >= n {
			t.Fatalf("Next() = %d, outside [0, %d)", i, n)
		}
		counts[i]++
	}
	for i, c := range counts {
		if c < 800 || c > 1200 { // expected 1000; 6 standard deviations is about ±180
			t.Errorf("index %d drawn %d times of 10000, want about 1000", i, c)
		}
	}
}
