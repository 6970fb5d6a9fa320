package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/workload"
)

// Whycache is whycache through its public API: a FileStore log in the
// round's directory (on disk, fdatasync at every commit) and the state
// file on /dev/shm. Writes are SetMulti calls (commit, then local apply);
// reads are Instance.AppendGet into the caller's buffer.
type Whycache struct{}

// Info describes whycache.
func (Whycache) Info() Info {
	return Info{
		Name:          "whycache",
		Sharing:       SharedMemory,
		WriterProcess: true,
		Durable:       true,
		Memory:        "state file size",
		Notes:         "log: FileStore on disk, fdatasync per commit; state file on /dev/shm",
	}
}

// Check reports nothing missing: whycache is pure Go.
func (Whycache) Check() error { return nil }

// Version returns the whycache module version this binary was built with;
// for the working tree (bench's go.mod replaces the module with ../) it
// adds the commit git reports for the current directory.
func (Whycache) Version() string {
	v := moduleVersion("github.com/whycache/whycache")
	if strings.HasPrefix(v, "local ") {
		if commit := binaryVersion("git", "rev-parse", "--short", "HEAD"); commit != "" {
			v += " at commit " + commit
		}
	}
	return v
}

// Start makes a directory for the state file under whycache's default
// state directory's parent (/dev/shm when it exists).
func (Whycache) Start(ctx context.Context, dir string) (Env, func() error, error) {
	stateDir, err := os.MkdirTemp(filepath.Dir(whycache.DefaultStateDir()), "whycache-compare-")
	if err != nil {
		return Env{}, nil, fmt.Errorf("peers: whycache: %w", err)
	}
	env := Env{Dir: dir, State: filepath.Join(stateDir, "bench.state")}
	return env, func() error { return os.RemoveAll(stateDir) }, nil
}

// Open opens the log and the state. In ModeLoad it fills the (empty)
// state with an Update first.
func (Whycache) Open(env Env, mode Mode) (Conn, error) {
	store, err := whycache.NewFileStore(filepath.Join(env.Dir, "log"))
	if err != nil {
		return nil, err
	}
	inst, err := whycache.Open(store, whycache.Options{StatePath: env.State})
	if err != nil {
		store.Close()
		return nil, err
	}
	c := &whycacheConn{store: store, inst: inst}
	if mode == ModeLoad {
		if err := inst.Update(context.Background()); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

type whycacheConn struct {
	store *whycache.FileStore
	inst  *whycache.Instance
	items []whycache.Item // reused by Put (one Put at a time)
}

func (c *whycacheConn) Get(dst, key []byte) ([]byte, bool, error) {
	out, err := c.inst.AppendGet(dst, key)
	if err == whycache.ErrNotFound {
		return dst, false, nil
	}
	return out, err == nil, err
}

func (c *whycacheConn) Put(b *workload.Batch) error {
	c.items = c.items[:0]
	for i := range b.Len() {
		c.items = append(c.items, whycache.Item{Key: b.Key(i), Value: b.Value(i)})
	}
	_, err := c.inst.SetMulti(context.Background(), c.items)
	return err
}

func (c *whycacheConn) Footprint() (int64, error) {
	st, err := c.inst.Stats(nil)
	return st.FileSize, err
}

func (c *whycacheConn) Close() error {
	err := c.inst.Close()
	if cerr := c.store.Close(); err == nil {
		err = cerr
	}
	return err
}
