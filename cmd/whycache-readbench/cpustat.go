package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuStat is where this process's time went so far. Its difference over a
// run (since) tells a reader that waited for a writer (its busy thread
// sleeps: wall time neither on a CPU nor runnable) from one that waited for
// a CPU (runnable, on a run queue).
type cpuStat struct {
	cpu      time.Duration // on a CPU, all threads (getrusage user + system)
	sleeps   int64         // voluntary context switches, all threads
	preempts int64         // involuntary context switches, all threads
	threads  map[string]schedTimes

	// Set by since: the thread that ran most, which runs the process's one
	// busy goroutine. ok is false where schedstat cannot be read.
	busyRun, busyWait time.Duration
	busyOK            bool
}

// schedTimes are the first two fields of a thread's schedstat.
type schedTimes struct {
	run  time.Duration // on a CPU
	wait time.Duration // runnable, waiting on a run queue
}

// readCPUStat reads getrusage and every thread's schedstat. Figures it
// cannot read are zero, which the report shows as no data.
func readCPUStat() cpuStat {
	var st cpuStat
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err == nil {
		st.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		st.sleeps, st.preempts = ru.Nvcsw, ru.Nivcsw
	}
	st.threads = map[string]schedTimes{}
	files, _ := filepath.Glob("/proc/self/task/*/schedstat")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		r, err1 := strconv.ParseInt(f[0], 10, 64)
		w, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil {
			st.threads[filepath.Base(filepath.Dir(name))] = schedTimes{time.Duration(r), time.Duration(w)}
		}
	}
	return st
}

// since returns what happened between st and now, with the busy thread's
// times.
func (st cpuStat) since() cpuStat {
	now := readCPUStat()
	d := cpuStat{
		cpu:      now.cpu - st.cpu,
		sleeps:   now.sleeps - st.sleeps,
		preempts: now.preempts - st.preempts,
	}
	for tid, t := range now.threads {
		run, wait := t.run-st.threads[tid].run, t.wait-st.threads[tid].wait
		if !d.busyOK || run > d.busyRun {
			d.busyRun, d.busyWait, d.busyOK = run, wait, true
		}
	}
	return d
}
