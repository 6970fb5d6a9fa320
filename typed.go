package whycache

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"time"
)

// Codec converts values of type V to and from bytes for Map.
type Codec[V any] interface {
	Encode(v V) ([]byte, error)
	Decode(data []byte) (V, error)
}

// Map is a typed view of an Instance: values of type V through a Codec.
// It is safe for concurrent use, like the Instance.
type Map[V any] struct {
	inst  *Instance
	codec Codec[V]
}

// NewMap returns a typed view of inst using codec.
func NewMap[V any](inst *Instance, codec Codec[V]) *Map[V] {
	return &Map[V]{inst: inst, codec: codec}
}

// Instance returns the underlying instance.
func (m *Map[V]) Instance() *Instance { return m.inst }

// Get returns the decoded value of key. Errors: those of Instance.Get, and
// the codec's decoding error wrapped with ErrCorrupt.
func (m *Map[V]) Get(key []byte) (V, error) {
	var zero V
	data, err := m.inst.Get(key)
	if err != nil {
		return zero, err
	}
	return m.decode(key, data)
}

// Set encodes v and sets key to it (see Instance.Set).
func (m *Map[V]) Set(ctx context.Context, key []byte, v V) (uint64, error) {
	data, err := m.encode(key, v)
	if err != nil {
		return 0, err
	}
	return m.inst.Set(ctx, key, data)
}

// SetWithTTL encodes v and sets key to it for ttl (see
// Instance.SetWithTTL).
func (m *Map[V]) SetWithTTL(ctx context.Context, key []byte, v V, ttl time.Duration) (uint64, error) {
	data, err := m.encode(key, v)
	if err != nil {
		return 0, err
	}
	return m.inst.SetWithTTL(ctx, key, data, ttl)
}

// GetWithExpiry returns the decoded value of key and its expiry time (see
// Instance.GetWithExpiry). Errors are those of Get.
func (m *Map[V]) GetWithExpiry(key []byte) (V, time.Time, error) {
	var zero V
	data, exp, err := m.inst.GetWithExpiry(key)
	if err != nil {
		return zero, time.Time{}, err
	}
	v, err := m.decode(key, data)
	if err != nil {
		return zero, time.Time{}, err
	}
	return v, exp, nil
}

// encode encodes v, the value of key.
func (m *Map[V]) encode(key []byte, v V) ([]byte, error) {
	data, err := m.codec.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("whycache: encode value of %q: %w", key, err)
	}
	return data, nil
}

// decode decodes data, the value of key.
func (m *Map[V]) decode(key, data []byte) (V, error) {
	v, err := m.codec.Decode(data)
	if err != nil {
		var zero V
		return zero, fmt.Errorf("%w: decode value of %q: %w", ErrCorrupt, key, err)
	}
	return v, nil
}

// Delete deletes key (see Instance.Delete).
func (m *Map[V]) Delete(ctx context.Context, key []byte) (uint64, error) {
	return m.inst.Delete(ctx, key)
}

// BytesCodec stores []byte values as they are.
type BytesCodec struct{}

// Encode returns v.
func (BytesCodec) Encode(v []byte) ([]byte, error) { return v, nil }

// Decode returns data.
func (BytesCodec) Decode(data []byte) ([]byte, error) { return data, nil }

// StringCodec stores strings as their bytes.
type StringCodec struct{}

// Encode returns the bytes of v.
func (StringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }

// Decode returns data as a string.
func (StringCodec) Decode(data []byte) (string, error) { return string(data), nil }

// JSONCodec stores values as JSON (encoding/json).
type JSONCodec[V any] struct{}

// Encode marshals v.
func (JSONCodec[V]) Encode(v V) ([]byte, error) { return json.Marshal(v) }

// Decode unmarshals data.
func (JSONCodec[V]) Decode(data []byte) (V, error) {
	var v V
	err := json.Unmarshal(data, &v)
	return v, err
}

// GobCodec stores values with encoding/gob (each value self-describing).
type GobCodec[V any] struct{}

// Encode gob-encodes v.
func (GobCodec[V]) Encode(v V) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode gob-decodes data.
func (GobCodec[V]) Decode(data []byte) (V, error) {
	var v V
	err := gob.NewDecoder(bytes.NewReader(data)).Decode(&v)
	return v, err
}
