package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"time"
)

// lagSample is the lag one follower's `whycache stats` reported.
type lagSample struct {
	T          float64 `json:"t_s"` // seconds since replication was stopped
	LagSeconds float64 `json:"lag_seconds"`
	LagRecords uint64  `json:"lag_records"`
	Err        string  `json:"err,omitempty"`
}

// StallReport is what the -stall phase saw.
type StallReport struct {
	StalledSeconds float64 `json:"stalled_s"`
	// DetectedAfter is the first time since the stop at which the
	// reported lag reached two intervals (-1: never while stalled).
	DetectedAfterSeconds float64 `json:"detected_after_s"`
	// MaxShortfall is the largest amount by which the reported lag was
	// below the time since the stop (0 or less: never under-reported).
	MaxShortfallSeconds float64 `json:"max_shortfall_s"`
	LagAtRestartSeconds float64 `json:"lag_at_restart_s"`
	// CatchUp is the time from the restart until the replica applied the
	// primary's position of a moment before within two intervals
	// (MASTER_GTID_WAIT): it had caught up with the running writer.
	CatchUpSeconds float64     `json:"catch_up_s"`
	Samples        []lagSample `json:"samples"`

	from, to time.Time // STOP SLAVE sent, replica caught up
}

// statsCommand returns the command that prints follower 0's stats as JSON,
// reading the log where the follower does.
func statsCommand(ctx context.Context, spec fleetSpec, state string) *exec.Cmd {
	a := []string{"--store", spec.store, "--table", spec.table, "--state", state}
	if spec.readStore != "" {
		a = append(a, "--read-store", spec.readStore)
	}
	a = append(a, "--json", "stats")
	return exec.CommandContext(ctx, spec.bin, a...)
}

// stall stops replication on replica for d, sampling the lag follower 0
// reports through `whycache stats --json` every interval (at least 100 ms),
// then restarts replication and waits until the replica has caught up with
// the primary (see CatchUpSeconds). Each sample is a process that opens its own
// connection (a prepare, an execute and a close on the replica), which the
// window's statement counts include.
func stall(ctx context.Context, primary, replica *sql.DB, spec fleetSpec, state string, d time.Duration) (*StallReport, error) {
	from := time.Now()
	if _, err := replica.ExecContext(ctx, "STOP SLAVE"); err != nil {
		return nil, fmt.Errorf("stall: STOP SLAVE: %w", err)
	}
	start := time.Now()
	r := &StallReport{from: from, DetectedAfterSeconds: -1, MaxShortfallSeconds: math.Inf(-1)}
	every := max(spec.interval, 100*time.Millisecond)
	for time.Since(start) < d && ctx.Err() == nil {
		s := lagSample{T: time.Since(start).Seconds()}
		out, err := statsCommand(ctx, spec, state).Output()
		var st struct {
			LagSeconds float64 `json:"lag_seconds"`
			LagRecords uint64  `json:"lag_records"`
		}
		if err == nil {
			err = json.Unmarshal(out, &st)
		}
		if err != nil {
			s.Err = err.Error()
		}
		s.LagSeconds, s.LagRecords = st.LagSeconds, st.LagRecords
		if r.DetectedAfterSeconds < 0 && s.LagSeconds >= 2*spec.interval.Seconds() {
			r.DetectedAfterSeconds = s.T
		}
		if s.Err == "" {
			r.MaxShortfallSeconds = max(r.MaxShortfallSeconds, s.T-s.LagSeconds)
		}
		r.Samples = append(r.Samples, s)
		time.Sleep(every)
	}
	if math.IsInf(r.MaxShortfallSeconds, -1) {
		r.MaxShortfallSeconds = 0
	}
	if n := len(r.Samples); n > 0 {
		r.LagAtRestartSeconds = r.Samples[n-1].LagSeconds
	}
	r.StalledSeconds = time.Since(start).Seconds()
	ctx = context.WithoutCancel(ctx)
	restart := time.Now()
	if _, err := replica.ExecContext(ctx, "START SLAVE"); err != nil {
		return r, fmt.Errorf("stall: START SLAVE: %w", err)
	}
	// Caught up: the replica applied the primary's position of a moment
	// before within two intervals (the writer goes on meanwhile).
	for {
		var pos string
		if err := primary.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
			return r, fmt.Errorf("stall: the primary's position: %w", err)
		}
		t := time.Now()
		var waited int
		if err := replica.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 120)", pos).Scan(&waited); err != nil || waited != 0 {
			return r, fmt.Errorf("stall: the replica did not reach %s within 120 s (%d, %v)", pos, waited, err)
		}
		if time.Since(t) < 2*spec.interval {
			break
		}
		if time.Since(restart) > 5*time.Minute {
			return r, fmt.Errorf("stall: the replica did not catch up with the primary within 5 minutes of the restart")
		}
	}
	r.to = time.Now()
	r.CatchUpSeconds = r.to.Sub(restart).Seconds()
	return r, nil
}
