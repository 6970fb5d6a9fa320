package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/whycache/whycache/bench/internal/peers"
	"github.com/whycache/whycache/bench/internal/proc"
	"github.com/whycache/whycache/bench/internal/workload"
)

// runChild is a child process: it opens its system (loading the workload
// when it is the loader or holds a private copy), reports ready, then runs
// the parent's commands until its stdin closes.
func runChild(cfg config, stdin io.Reader, stdout io.Writer) error {
	sys, _ := peers.Lookup(cfg.system) // checked by parseFlags
	var env peers.Env
	if err := json.Unmarshal([]byte(cfg.env), &env); err != nil {
		return fmt.Errorf("whycache-compare: --env: %w", err)
	}
	keys := workload.Keys(cfg.keys)
	conn := proc.NewConn(stdin, stdout)
	mustLoad := cfg.mode == peers.ModeLoad || (cfg.mode == peers.ModeRead && sys.Info().Sharing == peers.PerProcess)

	rss0, err := peers.ResidentBytes()
	if err != nil {
		return err
	}
	c, err := sys.Open(env, cfg.mode)
	if err != nil {
		return fmt.Errorf("whycache-compare: open %s: %w", cfg.system, err)
	}
	defer c.Close()
	ready := reply{Event: eventReady}
	if mustLoad {
		if ready, err = loadAndMeasure(c, keys, cfg.loadBatch, rss0); err != nil {
			return err
		}
	}
	if err := conn.Send(ready); err != nil {
		return err
	}
	for {
		var cmd command
		if err := conn.Recv(&cmd); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		res, err := execute(c, keys, cmd, conn)
		if err != nil {
			return err
		}
		if err := conn.Send(res); err != nil {
			return err
		}
	}
}

// loadAndMeasure bulk-loads keys and measures the time and the growth of
// the system's footprint (its own measure, or this process's resident
// set, which was rss0 before the system was opened).
func loadAndMeasure(c peers.Conn, keys []byte, batch int, rss0 int64) (reply, error) {
	fp, own := c.(peers.Footprinter)
	measure := peers.ResidentBytes
	if own {
		measure = fp.Footprint
	}
	before := rss0
	if own {
		var err error
		if before, err = measure(); err != nil {
			return reply{}, err
		}
	}
	start := time.Now()
	if err := load(c, keys, batch); err != nil {
		return reply{}, err
	}
	secs := time.Since(start).Seconds()
	after, err := measure()
	if err != nil {
		return reply{}, err
	}
	return reply{Event: eventReady, LoadSeconds: secs, LoadKeys: workload.Count(keys), FootprintBytes: after - before}, nil
}

// execute runs one command of the parent.
func execute(c peers.Conn, keys []byte, cmd command, conn *proc.Conn) (reply, error) {
	switch cmd.Op {
	case opRead:
		return readCommand(c, keys, cmd)
	case opWrite:
		stop := make(chan struct{})
		stopErr := make(chan error, 1)
		go func() {
			var next command
			err := conn.Recv(&next)
			if err == nil && next.Op != opStop {
				err = fmt.Errorf("whycache-compare: got %q while writing, want %q", next.Op, opStop)
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			stopErr <- err
			close(stop)
		}()
		written, elapsed, err := writeLoop(c, keys, cmd.WriteRate, cmd.WriteBatch, cmd.Seed, stop)
		if err != nil {
			return reply{}, err
		}
		if err := <-stopErr; err != nil {
			return reply{}, err
		}
		return reply{Event: eventResult, Writes: written, WriteSeconds: elapsed.Seconds()}, nil
	}
	return reply{}, fmt.Errorf("whycache-compare: unknown command %q", cmd.Op)
}

// readCommand reads for cmd.Seconds, with a writer goroutine beside it when
// cmd.WriteRate is set.
func readCommand(c peers.Conn, keys []byte, cmd command) (reply, error) {
	n := workload.Count(keys)
	if cmd.Hot > 0 {
		n = min(n, cmd.Hot)
	}
	d := time.Duration(cmd.Seconds * float64(time.Second))
	var res reply
	var werr error
	stop := make(chan struct{})
	done := make(chan struct{})
	if cmd.WriteRate > 0 {
		go func() {
			defer close(done)
			var written uint64
			var elapsed time.Duration
			written, elapsed, werr = writeLoop(c, keys, cmd.WriteRate, cmd.WriteBatch, cmd.Seed+1, stop)
			res.Writes, res.WriteSeconds = written, elapsed.Seconds()
		}()
	} else {
		close(done)
	}
	reads, elapsed, err := readLoop(c, keys, n, cmd.Seed, d)
	close(stop)
	<-done
	if err == nil {
		err = werr
	}
	if err != nil {
		return reply{}, err
	}
	res.Event, res.Reads, res.ReadSeconds = eventResult, reads, elapsed.Seconds()
	return res, nil
}
