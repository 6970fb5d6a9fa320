package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times
// (100 on every Linux this runs on).
const clockTicks = 100

// cpuTime returns the user+system CPU time pid has used ("self" for this
// process).
func cpuTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces: fields count from
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state(3) ... utime is field 14, stime 15 of the whole line.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: bad times %q %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// residentBytes returns VmRSS of pid.
func residentBytes(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%s/status: no VmRSS", pid)
}

// cpuMeter measures the CPU a set of processes use between start and stop,
// as a share of one core.
type cpuMeter struct {
	pids   []string
	before []time.Duration
	at     time.Time
}

// startCPU reads the CPU time of pids now. A pid that cannot be read
// counts 0.
func startCPU(pids []string) *cpuMeter {
	m := &cpuMeter{pids: pids, at: time.Now()}
	for _, p := range pids {
		t, _ := cpuTime(p)
		m.before = append(m.before, t)
	}
	return m
}

// stop returns each process's CPU since start as % of one core.
func (m *cpuMeter) stop() []float64 {
	wall := time.Since(m.at)
	out := make([]float64, len(m.pids))
	for i, p := range m.pids {
		t, err := cpuTime(p)
		if err != nil {
			continue
		}
		out[i] = 100 * float64(t-m.before[i]) / float64(wall)
	}
	return out
}
