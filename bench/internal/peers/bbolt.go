package peers

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/whycache/whycache/bench/internal/workload"
	bolt "go.etcd.io/bbolt"
)

var bboltBucket = []byte("kv")

// Bbolt is go.etcd.io/bbolt: a B+tree in a memory-mapped file, pure Go.
// Several processes may read one file (read-only opens share a lock), but
// a writer locks it exclusively, so the comparison writes from a goroutine
// of the reading process.
type Bbolt struct{}

// Info describes bbolt.
func (Bbolt) Info() Info {
	return Info{
		Name:    "bbolt",
		Sharing: SharedMemory,
		Durable: true,
		Memory:  "file size",
		Notes:   "file on disk, fsync per transaction; a read transaction per Get; writer in the reading process (the file lock excludes other processes while one writes)",
	}
}

// Check reports nothing missing: bbolt is pure Go.
func (Bbolt) Check() error { return nil }

// Version returns the module version.
func (Bbolt) Version() string { return moduleVersion("go.etcd.io/bbolt") }

// Start does nothing beyond the directory.
func (Bbolt) Start(ctx context.Context, dir string) (Env, func() error, error) {
	return Env{Dir: dir}, func() error { return nil }, nil
}

// Open opens the database file, read-only in ModeRead.
func (Bbolt) Open(env Env, mode Mode) (Conn, error) {
	path := filepath.Join(env.Dir, "bbolt.db")
	db, err := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: mode == ModeRead, Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("peers: bbolt: %w", err)
	}
	if mode != ModeRead {
		err = db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bboltBucket)
			return err
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("peers: bbolt: %w", err)
		}
	}
	return &bboltConn{db: db, path: path}, nil
}

type bboltConn struct {
	db   *bolt.DB
	path string
}

var errNoBucket = errors.New("peers: bbolt: no bucket")

func (c *bboltConn) Get(dst, key []byte) ([]byte, bool, error) {
	var found bool
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bboltBucket)
		if b == nil {
			return errNoBucket
		}
		v := b.Get(key)
		found = v != nil
		dst = append(dst, v...)
		return nil
	})
	return dst, found, err
}

func (c *bboltConn) Put(wb *workload.Batch) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bboltBucket)
		for i := range wb.Len() {
			if err := b.Put(wb.Key(i), wb.Value(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *bboltConn) Footprint() (int64, error) { return fileSize(c.path) }

func (c *bboltConn) Close() error { return c.db.Close() }
