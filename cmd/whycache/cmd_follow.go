package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/whycache/whycache"
)

func followCommand() *command {
	return &command{
		name:    "follow",
		args:    "",
		summary: "daemon: keep the state up to date (one poller per machine)",
		help: `Runs until SIGINT or SIGTERM, keeping this machine's state in step with the
log. Run it on every machine, as many times as you like (for example one per
service that uses the cache): one follower per state file polls the log
(the leader, holding an flock on STATE.follow); the others stand by and take
over within one --interval of the leader's exit or death.

The leader applies new records every --interval; after a failed poll it
retries after an exponential backoff with full jitter, up to --max-backoff.
Logs are structured (log/slog) on stderr.

With --metrics-addr it serves Prometheus metrics at http://ADDR/metrics:
whycache_update_id, whycache_latest_id, whycache_lag_records,
whycache_lag_seconds (the larger of the replica's lag and, while the state is
behind the log it reads, the seconds since it last applied records),
whycache_read_lag_seconds (with --read-store: the replica's clock less the
last heartbeat it holds), whycache_applied_records_total (rate() gives the
apply rate), whycache_keys, whycache_data_bytes, whycache_state_file_bytes,
whycache_update_errors_total and whycache_leader (1 on the leader, 0 on a
standby), each labelled with the state file, plus the Go runtime and
process series. Latest id and lag come from the leader (standbys show 0).

With --read-store mysql:DSN (a global flag) the leader polls a replica and
writes only heartbeats to --store. --heartbeat makes it write the primary's
clock to the log before every poll; one follower in the fleet is enough for
every machine to see its replica's lag. A follower holds at most one
connection to each server and closes it after 3 to 6 s unused; reading a
replica without --heartbeat it keeps none to the primary, which it asks
for the log's identity once a minute.

A follower runs on --procs 1 core by default (GOMAXPROCS 1): it is one
loop of polls and applies, and on a machine with many processes one core
saves it the Go scheduler's wake-ups between threads (in a fleet of 200
followers on 2 cores, 15-25% less follower CPU and a p99 propagation of
109-111 ms instead of 132-136). --procs 0 keeps Go's default (the
GOMAXPROCS environment variable, or every core).`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			var o followFlags
			fs.DurationVar(&o.interval, "interval", whycache.DefaultFollowInterval, "time between polls of the log, and between a standby's lock attempts")
			fs.DurationVar(&o.maxBackoff, "max-backoff", whycache.DefaultFollowMaxBackoff, "longest wait after failed polls")
			fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on `ADDR` (host:port, e.g. 127.0.0.1:9100)")
			fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
			fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
			fs.IntVar(&o.procs, "procs", 1, "cores the follower runs on (GOMAXPROCS); 0 keeps Go's default")
			fs.BoolVar(&o.heartbeat, "heartbeat", false, "write a heartbeat to the log's primary before every poll, so that machines reading replicas see how far they lag (one follower of the fleet is enough)")
			rebuild := fs.Bool("rebuild", false, "replace a state built from another log with this log's content")
			return func(e *env, _ []string) error {
				e.rebuild = *rebuild
				return e.follow(o)
			}
		},
	}
}

// Bounds of follow's --interval and --max-backoff.
const (
	minFollowInterval = 10 * time.Millisecond
	maxFollowInterval = time.Hour
	maxFollowBackoff  = 24 * time.Hour
)

// followFlags are the flags of follow.
type followFlags struct {
	interval, maxBackoff time.Duration
	metricsAddr          string
	heartbeat            bool
	logFormat, logLevel  string
	procs                int // GOMAXPROCS; 0 keeps the default
}

// newLogger returns the slog logger the flags ask for, writing to w.
func (o followFlags) newLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usageErrorf("follow: --log-level %q: want debug, info, warn or error", o.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, usageErrorf("follow: --log-format %q: want text or json", o.logFormat)
}

func (e *env) follow(o followFlags) error {
	if o.interval < minFollowInterval || o.interval > maxFollowInterval {
		return usageErrorf("follow: --interval %s: want between %s and %s", o.interval, minFollowInterval, maxFollowInterval)
	}
	if o.maxBackoff <= 0 || o.maxBackoff > maxFollowBackoff {
		return usageErrorf("follow: --max-backoff %s: want a positive duration up to %s", o.maxBackoff, maxFollowBackoff)
	}
	o.maxBackoff = max(o.maxBackoff, o.interval) // as Follow does
	if err := setProcs("follow", o.procs); err != nil {
		return err
	}
	if o.heartbeat && e.g.format == formatPython {
		return usageErrorf("follow: --heartbeat needs whycache's own MySQL layout: a Python whycache table (--format python) has no meta row to hold it")
	}
	e.oneConn = true // a follower: one connection per server, closed when idle
	e.keepPrimary = o.heartbeat
	s, logger, err := e.openLogged(o)
	if err != nil {
		return err
	}
	defer s.close()
	m := newMetrics(s.inst.StatePath())
	if o.metricsAddr != "" {
		stop, err := serveMetrics(o.metricsAddr, m, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	if st, err := s.inst.Stats(nil); err == nil {
		m.observe(whycache.FollowStats{Stats: st}, nil)
	}
	logger.Info("whycache: follow: starting", "store", s.describe(), "state", s.inst.StatePath(), "interval", o.interval, "max_backoff", o.maxBackoff, "procs", runtime.GOMAXPROCS(0))
	err = s.inst.Follow(e.ctx, whycache.FollowOptions{
		Interval:   o.interval,
		MaxBackoff: o.maxBackoff,
		Logger:     logger,
		OnPoll:     m.observe,
		Heartbeat:  o.heartbeat,
	})
	if errors.Is(err, context.Canceled) && e.ctx.Err() != nil {
		logger.Info("whycache: follow: stopping on signal")
		return nil
	}
	return wrap(err, "follow")
}

// serveMetrics starts the metrics endpoint and returns a function that
// stops it.
func serveMetrics(addr string, m *metrics, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, wrap(err, "follow: --metrics-addr %s", addr)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("whycache: follow: metrics endpoint stopped", "err", err)
		}
	}()
	logger.Info("whycache: follow: serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// openLogged makes the logger o asks for, then opens the session (which
// the caller closes).
func (e *env) openLogged(o followFlags) (*session, *slog.Logger, error) {
	logger, err := o.newLogger(e.stderr)
	if err != nil {
		return nil, nil, err
	}
	s, err := e.open()
	if err != nil {
		return nil, nil, err
	}
	return s, logger, nil
}
