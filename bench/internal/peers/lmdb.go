package peers

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/whycache/whycache/bench/internal/lmdb"
	"github.com/whycache/whycache/bench/internal/workload"
)

// LMDB is the LMDB C library (cgo, loaded at run time): a copy-on-write
// B+tree in a memory-mapped file. Readers in many processes and one writer
// process may use it at once.
type LMDB struct{}

// Info describes LMDB.
func (LMDB) Info() Info {
	return Info{
		Name:          "lmdb",
		Sharing:       SharedMemory,
		WriterProcess: true,
		Durable:       true,
		Memory:        "file size",
		Notes:         "cgo; file on disk, fsync per transaction; a Get renews a parked read transaction, reads and copies in one C call",
	}
}

// Check reports a missing liblmdb or a build without cgo.
func (LMDB) Check() error {
	if err := lmdb.Available(); err != nil {
		m := &MissingError{System: "lmdb", What: strings.TrimPrefix(err.Error(), "lmdb: ")}
		if cgoEnabled {
			m.Packages = []string{"liblmdb-dev"}
		}
		return m
	}
	return nil
}

// Version returns liblmdb's version string.
func (LMDB) Version() string { return lmdb.Version() }

// Start does nothing beyond the directory.
func (LMDB) Start(ctx context.Context, dir string) (Env, func() error, error) {
	return Env{Dir: dir}, func() error { return nil }, nil
}

// Open opens the environment, read-only in ModeRead.
func (LMDB) Open(env Env, mode Mode) (Conn, error) {
	path := filepath.Join(env.Dir, "lmdb.mdb")
	e, err := lmdb.Open(path, lmdb.Options{ReadOnly: mode == ModeRead})
	if err != nil {
		return nil, err
	}
	return &lmdbConn{env: e, path: path}, nil
}

type lmdbConn struct {
	env  *lmdb.Env
	path string
}

func (c *lmdbConn) Get(dst, key []byte) ([]byte, bool, error) { return c.env.Get(dst, key) }

func (c *lmdbConn) Put(b *workload.Batch) error {
	return c.env.PutBatch(b.Keys, workload.KeyLen, b.Values, workload.ValueLen)
}

func (c *lmdbConn) Footprint() (int64, error) { return fileSize(c.path) }

func (c *lmdbConn) Close() error { return c.env.Close() }
