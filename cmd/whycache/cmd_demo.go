package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/whycache/whycache"
)

func demoCommand() *command {
	return &command{
		name:    "demo",
		args:    "",
		summary: "a self-contained tour on a file store in a temp dir (start here)",
		help: `Runs a short tour of whycache in a temporary directory, on the file store (no
server needed), printing what each step shows and how long it took:

  1. several processes share one state file: a write by one is seen by the
     others at once, without any Update;
  2. concurrent writes are group-committed to the log;
  3. a second "machine" (another state file) catches up with Update;
  4. a snapshot is exported and bootstraps a third machine, which then tails
     the log from the snapshot's update id;
  5. the history is rewritten (record counts before and after) and a fresh
     machine rebuilds the same content from the compacted log.

It takes a few seconds, removes its directory at the end and needs no
global flags (--store and --state are ignored).`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			keep := fs.Bool("keep", false, "keep the temporary directory and print its path")
			readers := fs.Int("readers", 3, "reader processes in step 1 (1-16)")
			return func(e *env, _ []string) error {
				if *readers < 1 || *readers > 16 {
					return usageErrorf("demo: --readers %d: want 1 to 16", *readers)
				}
				return e.demo(*keep, *readers)
			}
		},
	}
}

// demo is one run of the tour.
type demo struct {
	e       *env
	dir     string
	logDir  string
	store   *whycache.FileStore
	readers int
	a       *whycache.Instance            // machine A, where the demo writes
	inst    map[string]*whycache.Instance // machines by name
}

func (e *env) demo(keep bool, readers int) (err error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "whycache-demo-")
	if err != nil {
		return wrap(err, "demo")
	}
	d := &demo{e: e, dir: dir, logDir: filepath.Join(dir, "log"), readers: readers, inst: map[string]*whycache.Instance{}}
	defer func() {
		if cerr := d.close(); err == nil && cerr != nil {
			err = wrap(cerr, "demo")
		}
		if keep {
			e.printf("\nKept %s (log in log/, one state file per machine).\n", dir)
		} else if rerr := os.RemoveAll(dir); err == nil && rerr != nil {
			err = wrap(rerr, "demo: clean up")
		}
	}()
	e.printf("whycache demo: a tour on a file store in %s\n", dir)
	if d.store, err = whycache.NewFileStore(d.logDir); err != nil {
		return wrap(err, "demo")
	}
	if d.a, err = d.machine("a"); err != nil {
		return wrap(err, "demo")
	}
	steps := []func() error{d.shareState, d.groupCommit, d.catchUp, d.snapshot, d.rewrite}
	for _, step := range steps {
		if err := step(); err != nil {
			return wrap(err, "demo")
		}
		if err := e.ctx.Err(); err != nil {
			return wrap(err, "demo")
		}
	}
	e.printf("\nDone in %s. Next: 'whycache --help', and the README's \"Command-line tool\" section.\n", fmtDur(time.Since(start)))
	return nil
}

// machine returns the instance of the named machine (its own state file
// on the shared log), opening it on first use.
func (d *demo) machine(name string) (*whycache.Instance, error) {
	if c := d.inst[name]; c != nil {
		return c, nil
	}
	c, err := whycache.Open(d.store, whycache.Options{StatePath: d.statePath(name)})
	if err != nil {
		return nil, err
	}
	d.inst[name] = c
	return c, nil
}

func (d *demo) statePath(name string) string { return filepath.Join(d.dir, name+".state") }

func (d *demo) close() error {
	var first error
	for _, c := range d.inst {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (d *demo) step(n int, title string) { d.e.printf("\n%d. %s\n", n, title) }

// sameContent compares the key/value sets of two machines.
func sameContent(a, b *whycache.Instance) (bool, int) {
	type kv struct{ k, v []byte }
	var all []kv
	for k, v := range a.All() {
		all = append(all, kv{k, v})
	}
	i := 0
	for k, v := range b.All() {
		if i >= len(all) || !bytes.Equal(all[i].k, k) || !bytes.Equal(all[i].v, v) {
			return false, len(all)
		}
		i++
	}
	return i == len(all), len(all)
}

// yesNo renders a check's outcome.
func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO (unexpected: please report)"
}

// fmtDur formats a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
