package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// The parent and a child talk in lines. A child writes one JSON message per
// line to its stdout: eventReady once it has opened the state and is about
// to wait, then eventResult when it is done. The parent writes cmdGo to
// every child's stdin to start them all at once and, to a writer, cmdStop
// once the readers have reported. A child whose stdin closes stops.
const (
	eventReady  = "ready"
	eventResult = "result"
	cmdGo       = "go"
	cmdStop     = "stop"
)

// message is one line a child writes. Reader results fill Reads; writer
// results fill the Write* fields.
type message struct {
	Event   string  `json:"event"`
	Seconds float64 `json:"seconds,omitempty"`
	Reads   uint64  `json:"reads,omitempty"`
	// CPUSeconds, Sleeps and Preempts are the CPU time and the voluntary
	// and involuntary context switches of all the child's threads while it
	// ran; BusyRun and BusyRunq the time its busiest thread spent on a CPU
	// and waiting for one (valid when BusyOK). See cpuStat.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	BusyRun    float64 `json:"busy_run_seconds,omitempty"`
	BusyRunq   float64 `json:"busy_runq_seconds,omitempty"`
	BusyOK     bool    `json:"busy_ok,omitempty"`
	Sleeps     int64   `json:"sleeps,omitempty"`
	Preempts   int64   `json:"preempts,omitempty"`

	WriteKeys       uint64  `json:"write_keys,omitempty"`
	WriteDueKeys    uint64  `json:"write_due_keys,omitempty"` // keys the pacing schedule called for
	WriteBatches    uint64  `json:"write_batches,omitempty"`
	WriteBusySecs   float64 `json:"write_busy_seconds,omitempty"`
	WriteMaxBatchUs float64 `json:"write_max_batch_us,omitempty"`
}

// send writes m as one line to w.
func send(w io.Writer, m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("whycache-readbench: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("whycache-readbench: write to parent: %w", err)
	}
	return nil
}

// expect reads the next line of in and reports an error unless it is want
// (EOF included: the parent went away).
func expect(in *bufio.Scanner, want string) error {
	if !in.Scan() {
		if err := in.Err(); err != nil {
			return fmt.Errorf("whycache-readbench: read from parent: %w", err)
		}
		return fmt.Errorf("whycache-readbench: parent closed stdin before %q", want)
	}
	if got := in.Text(); got != want {
		return fmt.Errorf("whycache-readbench: parent sent %q, want %q", got, want)
	}
	return nil
}
