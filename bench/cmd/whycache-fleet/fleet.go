package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

// follower is one `whycache follow` process: one simulated machine with
// its own state file.
type follower struct {
	index int
	state string // the state file
	log   string // its stderr
	cmd   *exec.Cmd
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, once done is closed
	inst  *whycache.Instance
}

// fleetSpec is what every follower is started with.
type fleetSpec struct {
	bin        string
	dir        string // state files and logs
	store      string // mysql:DSN of the primary
	readStore  string // mysql:DSN of the replica, or ""
	table      string
	notifyAddr string // redis-server, or ""
	channel    string
	interval   time.Duration
	heartbeat  bool // follower 0 writes heartbeats (replica mode)
	procs      int  // the followers' --procs (GOMAXPROCS); 0 is Go's default
}

// args returns the command line of follower i.
func (s fleetSpec) args(i int, state string) []string {
	a := []string{"--store", s.store, "--table", s.table, "--state", state}
	if s.readStore != "" {
		a = append(a, "--read-store", s.readStore)
	}
	if s.notifyAddr != "" {
		a = append(a, "--notify", s.notifyAddr, "--notify-channel", s.channel)
	}
	a = append(a, "follow", "--interval", s.interval.String(), "--log-level", "warn", "--procs", strconv.Itoa(s.procs))
	if s.heartbeat && i == 0 {
		a = append(a, "--heartbeat")
	}
	return a
}

// startFleet starts n followers. They die with this process (SIGKILL) if
// it dies; stopFleet ends them.
func startFleet(s fleetSpec, n int) ([]*follower, error) {
	fleet := make([]*follower, 0, n)
	for i := range n {
		f := &follower{
			index: i,
			state: filepath.Join(s.dir, fmt.Sprintf("f%03d.state", i)),
			log:   filepath.Join(s.dir, fmt.Sprintf("f%03d.log", i)),
			done:  make(chan struct{}),
		}
		logFile, err := os.Create(f.log)
		if err != nil {
			stopFleet(fleet)
			return nil, err
		}
		f.cmd = exec.Command(s.bin, s.args(i, f.state)...)
		f.cmd.Stdout, f.cmd.Stderr = logFile, logFile
		f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = f.cmd.Start()
		logFile.Close()
		if err != nil {
			stopFleet(fleet)
			return nil, fmt.Errorf("start follower %d: %w", i, err)
		}
		go func() { f.err = f.cmd.Wait(); close(f.done) }()
		fleet = append(fleet, f)
	}
	return fleet, nil
}

// pid returns the follower's pid as /proc names it.
func (f *follower) pid() string { return strconv.Itoa(f.cmd.Process.Pid) }

// exited returns a description of the follower's exit, or "" while it runs.
func (f *follower) exited() string {
	select {
	case <-f.done:
		out, _ := os.ReadFile(f.log)
		return fmt.Sprintf("follower %d exited (%v): %s", f.index, f.err, lastLine(string(out)))
	default:
		return ""
	}
}

// waitReady waits until every follower's state file exists and holds
// record id, and opens each read-only for the watcher. store is only named
// by the instances: a read-only instance never writes to it.
func waitReady(ctx context.Context, fleet []*follower, store logstore.Store, id uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, f := range fleet {
		for {
			if msg := f.exited(); msg != "" {
				return fmt.Errorf("%s", msg)
			}
			if f.inst == nil {
				if _, err := os.Stat(f.state); err == nil {
					inst, err := whycache.Open(store, whycache.Options{StatePath: f.state, ReadOnly: true})
					if err != nil {
						return fmt.Errorf("open follower %d's state read-only: %w", f.index, err)
					}
					f.inst = inst
				}
			}
			if f.inst != nil && f.inst.UpdateID() >= id {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("follower %d did not reach record %d within %v (log %s)", f.index, id, timeout, f.log)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// stopFleet sends SIGTERM to every follower still running and waits for
// them (SIGKILL after 10 s). Their states stay open for checks.
func stopFleet(fleet []*follower) {
	for _, f := range fleet {
		if f.exited() == "" {
			f.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range fleet {
		select {
		case <-f.done:
		case <-time.After(time.Until(deadline)):
			f.cmd.Process.Kill()
			<-f.done
		}
	}
}

// closeStates closes the followers' read-only instances.
func closeStates(fleet []*follower) {
	for _, f := range fleet {
		if f.inst != nil {
			f.inst.Close()
			f.inst = nil
		}
	}
}
