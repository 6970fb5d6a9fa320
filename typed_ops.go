package whycache

import (
	"context"
	"time"
)

// GetOrLoad returns the decoded value of key, loading, encoding and
// storing it on a miss (see Instance.GetOrLoad; the ttl load returns
// works the same). An encoding error of the loaded value is returned and
// nothing is stored.
func (m *Map[V]) GetOrLoad(ctx context.Context, key []byte,
	load func(ctx context.Context) (V, time.Duration, error)) (V, error) {
	data, err := m.inst.GetOrLoad(ctx, key, func(ctx context.Context) ([]byte, time.Duration, error) {
		v, ttl, err := load(ctx)
		if err != nil {
			return nil, 0, err
		}
		data, err := m.encode(key, v)
		return data, ttl, err
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return m.decode(key, data)
}

// MapTxn is a transaction on a Map (Map.Txn): a Txn whose values go
// through the Map's codec. It is valid only during the call of the
// function it was given to.
type MapTxn[V any] struct {
	m  *Map[V]
	tx *Txn
}

// Txn runs fn with a typed transaction and commits its writes as
// Instance.Txn does, with the same guarantees and errors; an encoding
// error in a write fails that write.
func (m *Map[V]) Txn(ctx context.Context, fn func(tx *MapTxn[V]) error) (uint64, error) {
	return m.inst.Txn(ctx, func(tx *Txn) error { return fn(&MapTxn[V]{m: m, tx: tx}) })
}

// Get returns the decoded value of key as the transaction sees it (see
// Txn.Get).
func (t *MapTxn[V]) Get(key []byte) (V, error) {
	data, err := t.tx.Get(key)
	if err != nil {
		var zero V
		return zero, err
	}
	return t.m.decode(key, data)
}

// Set buffers key set to the encoding of v (see Txn.Set).
func (t *MapTxn[V]) Set(key []byte, v V) error {
	data, err := t.m.encode(key, v)
	if err != nil {
		return err
	}
	return t.tx.Set(key, data)
}

// SetWithTTL buffers key set to the encoding of v, expiring ttl from now
// (see Txn.SetWithTTL).
func (t *MapTxn[V]) SetWithTTL(key []byte, v V, ttl time.Duration) error {
	data, err := t.m.encode(key, v)
	if err != nil {
		return err
	}
	return t.tx.SetWithTTL(key, data, ttl)
}

// Delete buffers a delete of key (see Txn.Delete).
func (t *MapTxn[V]) Delete(key []byte) error { return t.tx.Delete(key) }
