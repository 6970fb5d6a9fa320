package whycache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/whycache/whycache/internal/flock"
	"github.com/whycache/whycache/prefixtree"
	"github.com/whycache/whycache/shm"
)

// State files are replaced (by a rebuild or a snapshot load) or deleted
// only under the swap lock, an flock on STATE.lock, and always the same way:
// the new file is built beside the old one, renamed over the path, and the
// old file is retired. Processes still using the old file then get
// shm.ErrRetired from their next read or write and reopen the path, so
// none of them restarts and none sees a moment without the keys.

// withSwapLock runs fn holding the swap lock of the state file, waiting
// for it under ctx.
func (c *Instance) withSwapLock(ctx context.Context, fn func() error) error {
	if c.opts.ReadOnly {
		return withContext("swap the state file", ErrReadOnly)
	}
	f, err := c.dir.OpenLock(c.name+".lock", c.opts.FileMode)
	if err != nil {
		return withContext("open swap lock", wrapStateErr(err))
	}
	defer f.Close()
	if err := flock.Lock(ctx, int(f.Fd())); err != nil {
		return fmt.Errorf("whycache: take swap lock %s: %w", f.Name(), err)
	}
	return fn()
}

// retirePath replaces the state file currently at the path, if any: it
// takes that file's writer lock (so no process changes it from then on),
// calls replace (which renames a new file over the path or removes it)
// with the old file's meta words (nil when there is no usable old file),
// and retires the old file in the same transaction. The swap lock is held,
// and is always taken before a state's writer lock.
func (c *Instance) retirePath(ctx context.Context, replace func(live *stateMeta) error) error {
	old, err := c.openState(c.name, prefixtree.Options{NoCreate: true})
	if err != nil {
		// Missing, or a file we cannot open (corrupt, foreign): replace it.
		return replace(nil)
	}
	defer old.Close()
	tx, err := old.File().BeginContext(ctx)
	if err != nil {
		if !prefixtree.IsRetired(err) {
			return withContext("retire old state", err)
		}
		return replace(nil) // retired already: nothing to lock or retire
	}
	live := stateMetaLocked(old)
	if err := replace(&live); err != nil {
		tx.Rollback()
		return err
	}
	tx.Retire()
	return tx.Commit()
}

// tempStateName returns a new name for a temporary state file beside the
// state file.
func (c *Instance) tempStateName(what string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return c.name + "." + what + "-" + hex.EncodeToString(b[:])
}

// newTempState creates an empty state file beside the state file, marked
// as being built (lockTemp) until swapIn or removeTemp, after removing
// those that dead processes left (sweepTemps). It returns the file's name.
func (c *Instance) newTempState(what string) (*prefixtree.Tree, string, error) {
	if c.opts.ReadOnly {
		return nil, "", withContext("build a new state", ErrReadOnly)
	}
	c.sweepTemps()
	tmp := c.tempStateName(what)
	t, err := c.openState(tmp, prefixtree.Options{})
	if err != nil {
		return nil, "", err
	}
	c.lockTemp(tmp)
	return t, tmp, nil
}

// swapIn renames the filled state at tmp over the state path, retires the
// file it replaces, and makes t the instance's state. If catchUp is set, it
// runs while the old file's writer lock is held, just before the rename,
// with the old file's meta words (nil when there is none): there it can
// bring t up to the latest record, so that nothing applied to the old
// state is missing from the new one, or refuse the swap. Then t takes the
// old file's record of rebuilds, one more when rebuild (its cause) is set
// (carryRebuilds).
func (c *Instance) swapIn(ctx context.Context, t *prefixtree.Tree, tmp string, rebuild *rebuildCause, catchUp func(live *stateMeta) error) error {
	err := c.withSwapLock(ctx, func() error {
		return c.retirePath(ctx, func(live *stateMeta) error {
			if catchUp != nil {
				if err := catchUp(live); err != nil {
					return err
				}
			}
			if err := carryRebuilds(ctx, t, live, rebuild); err != nil {
				return err
			}
			if err := c.dir.Rename(tmp, c.name); err != nil {
				return withContext("install new state", err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	c.unlockTemp(tmp)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.cur.Swap(t); old != nil {
		c.retired = append(c.retired, old)
	}
	return nil
}

// rebuildLocked builds a new state from the whole log beside the old one,
// catches it up with the records committed meanwhile while holding the old
// state's writer lock, records the rebuild in it (the old state's count
// plus one, the time, why: see Stats.Rebuilds; swapIn) and swaps it in.
// updateMu is held.
func (c *Instance) rebuildLocked(ctx context.Context, cause error) (int, error) {
	for attempt := 0; ; attempt++ {
		t, tmp, err := c.newTempState("rebuild")
		if err != nil {
			return 0, err
		}
		n, err := c.tail(ctx, t, false)
		if err == nil {
			why := causeOf(cause)
			err = c.swapIn(ctx, t, tmp, &why, func(*stateMeta) error {
				m, err := c.tail(ctx, t, false)
				n += m
				return err
			})
		}
		var rb *rebuildError
		if err != nil {
			t.Close()
			c.removeTemp(tmp)
			if errors.As(err, &rb) && attempt < 3 {
				continue // the log was reset or compacted during the rebuild
			}
			return n, err
		}
		return n, nil
	}
}

// markMustBuild records in the state t that it owes a rebuild for cause
// (stateMeta.mustBuild; a known cause), unless it already does: a rebuild
// that does not finish, a process that may not rebuild (RebuildNever) or
// exits first, and every other process of the machine then meet it again
// at their next Update (tail), even though what showed it (a late row of
// a Python table, rebuildError.owed) is not shown again. A rebuild
// installs a new state, which owes nothing.
func markMustBuild(ctx context.Context, t *prefixtree.Tree, cause rebuildCause) error {
	b, err := t.BeginContext(ctx)
	if err != nil {
		return err
	}
	old := stateMetaLocked(t)
	if old.mustBuild != rebuiltUnknown {
		return b.Rollback()
	}
	m := old
	m.mustBuild = cause
	if err := m.writeTo(b, old); err != nil {
		b.Rollback()
		return err
	}
	return b.Commit()
}

// carryRebuilds writes into the new state t, before it replaces live (nil
// when there is none), the record of rebuilds live holds (Stats.Rebuilds):
// as is, or, when t is a rebuild (rebuild not nil), one more, now, for
// that cause.
func carryRebuilds(ctx context.Context, t *prefixtree.Tree, live *stateMeta, rebuild *rebuildCause) error {
	if (live == nil || live.rebuilds == 0) && rebuild == nil {
		return nil
	}
	b, err := t.BeginContext(ctx)
	if err != nil {
		return err
	}
	old := stateMetaLocked(t)
	m := old
	if live != nil {
		m.rebuilds, m.rebuiltAt, m.rebuildBy = live.rebuilds, live.rebuiltAt, live.rebuildBy
	}
	if rebuild != nil {
		m.rebuilds++
		m.rebuiltAt, m.rebuildBy = uint64(time.Now().UnixNano()), *rebuild
	}
	if err := m.writeTo(b, old); err != nil {
		b.Rollback()
		return err
	}
	return b.Commit()
}

// DeleteSharedState deletes the state file. Every process using it moves to
// a new, empty state: Valid reports false and Get returns ErrInvalidState
// until the next Update rebuilds it from the log.
func (c *Instance) DeleteSharedState() error {
	if err := c.updateMu.Lock(context.Background()); err != nil {
		return err
	}
	defer c.updateMu.Unlock()
	if _, err := c.tree(); err != nil {
		return err
	}
	err := c.withSwapLock(context.Background(), func() error {
		return c.retirePath(context.Background(), func(*stateMeta) error {
			if err := c.dir.Remove(c.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return withContext("delete state", err)
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

// restoreRemovedState makes sure the state path still names the file this
// process uses. When the file was removed (by an operator, or by systemd's
// RemoveIPC), it is put back from this process's mapping: copied beside
// the path, installed, and the removed file retired, all while the removed
// file's writer lock is held, so nothing written to it is lost and the
// processes still mapping it move to the new one. When another file was
// put at the path, the instance moves to that file and retires its own,
// so that every process follows. Writers (Update, Set) call it; readers
// never do.
func (c *Instance) restoreRemovedState(ctx context.Context) error {
	t := c.cur.Load()
	if t == nil || t.File().Retired() {
		return nil
	}
	status, err := t.File().CheckPath()
	switch {
	case err != nil:
		return wrapStateErr(err)
	case status == shm.PathCurrent:
		return nil
	case status == shm.PathReplaced:
		nt, err := c.openTree(t)
		if err != nil {
			return err
		}
		if nt != t {
			retireFile(ctx, t)
		}
		return nil
	}
	return c.withSwapLock(ctx, func() error {
		if _, err := c.dir.Lstat(c.name); err == nil {
			return nil // another process put a state back meanwhile: the next open finds it
		}
		for attempt := 0; attempt < 10; attempt++ {
			done, err := c.reinstall(ctx, t)
			if err != nil || done {
				return err
			}
		}
		return fmt.Errorf("whycache: state file %s was removed and could not be put back: it keeps changing", c.path)
	})
}

// reinstall copies t (whose path was removed) to a temporary file and, if
// nothing was committed to t since the copy, installs the copy at the path
// and retires t under t's writer lock. done is false when t changed during
// the copy (try again).
func (c *Instance) reinstall(ctx context.Context, t *prefixtree.Tree) (done bool, err error) {
	tmp := c.tempStateName("restore")
	if err := t.File().CopyToIn(c.dir, tmp, c.opts.FileMode); err != nil {
		return false, wrapStateErr(err)
	}
	c.lockTemp(tmp)
	nt, err := c.openState(tmp, prefixtree.Options{NoCreate: true})
	if err != nil {
		c.removeTemp(tmp)
		return false, err
	}
	tx, err := t.File().BeginContext(ctx)
	if err != nil {
		nt.Close()
		c.removeTemp(tmp)
		return false, wrapStateErr(err)
	}
	if t.File().Stats().Commits != nt.File().Stats().Commits {
		tx.Rollback()
		nt.Close()
		c.removeTemp(tmp)
		return false, nil
	}
	if err := c.dir.Rename(tmp, c.name); err != nil {
		tx.Rollback()
		nt.Close()
		c.removeTemp(tmp)
		return false, withContext("put the state file back", err)
	}
	c.unlockTemp(tmp)
	tx.Retire()
	if err := tx.Commit(); err != nil {
		return false, wrapStateErr(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.cur.Swap(nt); old != nil {
		c.retired = append(c.retired, old)
	}
	return true, nil
}

// retireFile marks t's file retired, so that every process using it moves
// to the file at the path. Errors are ignored: a file that cannot be
// retired (closed, already retired) needs nothing more.
func retireFile(ctx context.Context, t *prefixtree.Tree) {
	if tx, err := t.File().BeginContext(ctx); err == nil {
		tx.Retire()
		tx.Commit()
	}
}
