package whycache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/whycache/whycache/prefixtree"
	"golang.org/x/sys/unix"
)

// State files are replaced (by a rebuild or a snapshot load) or deleted
// only under the swap lock, an flock on STATE.lock, and always the same way:
// the new file is built beside the old one, renamed over the path, and the
// old file is retired. Processes still using the old file then get
// shm.ErrRetired from their next read or write and reopen the path, so
// none of them restarts and none sees a moment without the keys.

// withSwapLock runs fn holding the swap lock of the state path.
func (c *Instance) withSwapLock(fn func() error) error {
	fd, err := unix.Open(c.path+".lock", unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, uint32(c.opts.FileMode.Perm()))
	if err != nil {
		return fmt.Errorf("whycache: open swap lock: %w", err)
	}
	defer unix.Close(fd)
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("whycache: take swap lock: %w", err)
	}
	return fn()
}

// retirePath replaces the state file currently at the path, if any: it
// takes that file's writer lock (so no process changes it from then on),
// calls replace (which renames a new file over the path or removes it),
// and retires the old file in the same transaction. The swap lock is held,
// and is always taken before a state's writer lock.
func (c *Instance) retirePath(replace func() error) error {
	old, err := prefixtree.Open(c.path, prefixtree.Options{NoCreate: true})
	if err != nil {
		// Missing, or a file we cannot open (corrupt, foreign): replace it.
		return replace()
	}
	defer old.Close()
	tx, err := old.File().Begin()
	if err != nil {
		if !prefixtree.IsRetired(err) {
			return fmt.Errorf("whycache: retire old state: %w", err)
		}
		tx = nil // retired already: nothing to lock or retire
	}
	if err := replace(); err != nil {
		if tx != nil {
			tx.Rollback()
		}
		return err
	}
	if tx == nil {
		return nil
	}
	tx.Retire()
	return tx.Commit()
}

// tempStatePath returns a new path beside the state file.
func (c *Instance) tempStatePath(what string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return c.path + "." + what + "-" + hex.EncodeToString(b[:])
}

// newTempState creates an empty state file beside the state path, marked
// as being built (lockTemp) until swapIn or removeTemp, after removing
// those that dead processes left (sweepTemps).
func (c *Instance) newTempState(what string) (*prefixtree.Tree, string, error) {
	if _, err := c.tree(); err != nil { // makes sure the directory exists
		return nil, "", err
	}
	c.sweepTemps()
	tmp := c.tempStatePath(what)
	t, err := prefixtree.Open(tmp, prefixtree.Options{MaxSize: c.opts.MaxStateSize, FileMode: c.opts.FileMode})
	if err != nil {
		return nil, "", wrapStateErr(err)
	}
	lockTemp(tmp)
	return t, tmp, nil
}

// swapIn renames the filled state at tmp over the state path, retires the
// file it replaces, and makes t the instance's state. If catchUp is set, it
// runs while the old file's writer lock is held, just before the rename:
// there it can bring t up to the latest record, so that nothing applied to
// the old state is missing from the new one.
func (c *Instance) swapIn(t *prefixtree.Tree, tmp string, catchUp func() error) error {
	err := c.withSwapLock(func() error {
		return c.retirePath(func() error {
			if catchUp != nil {
				if err := catchUp(); err != nil {
					return err
				}
			}
			if err := os.Rename(tmp, c.path); err != nil {
				return fmt.Errorf("whycache: install new state: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	unlockTemp(tmp)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.cur.Swap(t); old != nil {
		c.retired = append(c.retired, old)
	}
	return nil
}

// rebuildLocked builds a new state from the whole log beside the old one,
// catches it up with the records committed meanwhile while holding the old
// state's writer lock, and swaps it in. updateMu is held.
func (c *Instance) rebuildLocked(ctx context.Context) (int, error) {
	for attempt := 0; ; attempt++ {
		info, err := c.refreshLogInfo(ctx)
		if err != nil {
			return 0, err
		}
		t, tmp, err := c.newTempState("rebuild")
		if err != nil {
			return 0, err
		}
		n, err := c.tail(ctx, t, 0, info.ID)
		if err == nil {
			err = c.swapIn(t, tmp, func() error {
				m, err := c.tail(ctx, t, t.Meta(metaUpdateID), info.ID)
				n += m
				return err
			})
		}
		if errors.Is(err, errRebuild) && attempt < 3 {
			t.Close()
			removeTemp(tmp)
			continue // the log was reset or compacted meanwhile
		}
		if err != nil {
			t.Close()
			removeTemp(tmp)
			return n, err
		}
		return n, nil
	}
}

// DeleteSharedState deletes the state file. Every process using it moves to
// a new, empty state: Valid reports false and Get returns ErrInvalidState
// until the next Update rebuilds it from the log.
func (c *Instance) DeleteSharedState() error {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	if _, err := c.tree(); err != nil {
		return err
	}
	err := c.withSwapLock(func() error {
		return c.retirePath(func() error {
			if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("whycache: delete state: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.cur.Swap(nil); old != nil {
		c.retired = append(c.retired, old)
	}
	return nil
}
