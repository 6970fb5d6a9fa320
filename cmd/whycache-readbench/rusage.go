package main

import (
	"syscall"
	"time"
)

// usage is this process's CPU time and involuntary context switches so far.
type usage struct {
	cpu      time.Duration // user + system
	preempts int64         // involuntary context switches
}

// selfUsage reads getrusage(RUSAGE_SELF); on error it returns zeros, which
// the report shows as no data.
func selfUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{
		cpu:      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		preempts: ru.Nivcsw,
	}
}

// since returns the usage between u and now.
func (u usage) since() usage {
	now := selfUsage()
	return usage{cpu: now.cpu - u.cpu, preempts: now.preempts - u.preempts}
}
