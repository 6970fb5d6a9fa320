package main

import (
	"context"
	"flag"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/internal/respserver"
	"github.com/whycache/whycache/internal/sockfile"
	"github.com/whycache/whycache/internal/statedir"
)

// servePasswordEnv carries the password clients of serve must give with
// AUTH, so that it appears on no command line.
const servePasswordEnv = "WHYCACHE_SERVE_PASSWORD"

func serveCommand() *command {
	return &command{
		name:    "serve",
		args:    "",
		summary: "serve the cache over the Redis protocol (for clients in other languages)",
		help: `Serves this machine's state to Redis clients on a loopback TCP address
(--addr HOST:PORT) and/or a Unix socket (--unix PATH), until SIGINT or
SIGTERM. Reads (GET, MGET, EXISTS, TTL, SCAN, KEYS) are memory reads of
the shared state; writes (SET, DEL) commit to the log, then apply here,
before they answer. The server keeps the state current itself: it runs the
follow loop (see 'whycache follow --help') every --interval.

Commands: GET MGET SET (EX PX EXAT PXAT) MSET SETEX PSETEX DEL UNLINK EXISTS
TTL PTTL SCAN KEYS DBSIZE PING ECHO INFO QUIT SELECT 0 COMMAND CLIENT HELLO
AUTH CONFIG GET.
SET NX/XX/GET/KEEPTTL, EXPIRE/PERSIST and INCR/DECR/APPEND/GETSET/SETNX
are refused: a write is an unconditional log commit, and a value or
expiry read here may already be replaced on another machine.

Security: reads need no more than a connection, so --addr accepts only
loopback addresses unless --allow-remote is given; the socket of --unix is
created with --socket-mode (0600 by default: only this user) in a
directory no other user can write (or a sticky one such as /tmp). A
password clients must give with AUTH is read from $WHYCACHE_SERVE_PASSWORD
or --requirepass-file FILE (never from the command line).

Speed: like redis-server's one thread, the server runs its connections
on event loops, one per core of --procs (1 by default, GOMAXPROCS 1): a
loop reads each connection when it is readable and answers every command
of the read with one write, with no goroutine per connection; on a
machine whose other cores run the clients this answers more requests per
second than spreading the connections over every core. A write (SET,
DEL) runs on a goroutine of its own while the loop serves the other
connections. --procs 0 keeps Go's default (the GOMAXPROCS environment
variable, or every core). The garbage collector runs with GOGC=400 unless $GOGC is set: the server's
heap is small, and the default of 100 collects too often.

With --addr 127.0.0.1:0 a free port is chosen; the log line "serving"
names it, and the number of cores used.`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			var o serveFlags
			fs.StringVar(&o.addr, "addr", "", "listen on TCP `HOST:PORT` (loopback only unless --allow-remote)")
			fs.StringVar(&o.unix, "unix", "", "listen on a Unix socket at `PATH`")
			fs.StringVar(&o.socketMode, "socket-mode", "0600", "permissions of the --unix socket, in octal (0660 lets the socket's group connect)")
			fs.BoolVar(&o.allowRemote, "allow-remote", false, "let --addr be a non-loopback address: anyone who can connect reads the cache (use a password)")
			fs.StringVar(&o.passwordFile, "requirepass-file", "", "require AUTH with the password in `FILE` (not readable by other users; or $"+servePasswordEnv+")")
			fs.DurationVar(&o.follow.interval, "interval", whycache.DefaultFollowInterval, "time between polls of the log by the built-in follow loop")
			fs.IntVar(&o.procs, "procs", 1, "cores the server runs on (GOMAXPROCS); 0 keeps Go's default")
			fs.BoolVar(&o.noFollow, "no-follow", false, "do not run the follow loop (run 'whycache follow' beside the server instead)")
			fs.StringVar(&o.follow.logFormat, "log-format", "text", "log format: text or json")
			fs.StringVar(&o.follow.logLevel, "log-level", "info", "log level: debug, info, warn or error")
			return func(e *env, _ []string) error { return e.serve(o) }
		},
	}
}

// gcPercent returns the garbage collector's current target (GOGC).
func gcPercent() int {
	v := debug.SetGCPercent(100)
	debug.SetGCPercent(v)
	return v
}

// serveGCPercent is the garbage collector's target of serve unless $GOGC
// sets one. The server's own heap is small (values are read from the
// mapped state), while the RESP parser allocates a few hundred bytes per
// command: at Go's default of 100 the collector runs dozens of times a
// second under load, at 400 a few times.
const serveGCPercent = 400

// serveFlags are the flags of serve.
type serveFlags struct {
	addr, unix   string
	socketMode   string
	allowRemote  bool
	passwordFile string
	noFollow     bool
	procs        int         // GOMAXPROCS; 0 keeps the default
	follow       followFlags // interval and logging
}

// servePassword returns the password of --requirepass-file or
// $WHYCACHE_SERVE_PASSWORD, "" for none.
func (e *env) servePassword(file string) (string, error) {
	env := e.getenv(servePasswordEnv)
	switch {
	case file != "" && env != "":
		return "", usageErrorf("serve: the password is given twice: by --requirepass-file and by $%s", servePasswordEnv)
	case file != "":
		pw, err := readSecretFile(file, "--requirepass-file")
		if err == nil && pw == "" {
			err = usageErrorf("serve: --requirepass-file %s is empty", file)
		}
		return pw, err
	}
	return env, nil
}

// parseSocketMode parses --socket-mode.
func (o serveFlags) parseSocketMode() (os.FileMode, error) {
	n, err := strconv.ParseUint(o.socketMode, 8, 32)
	if err != nil || n > 0o777 {
		return 0, usageErrorf("serve: --socket-mode %q: want an octal mode such as 0600 or 0660", o.socketMode)
	}
	if n&0o600 != 0o600 {
		return 0, usageErrorf("serve: --socket-mode %#o: the owner must be able to connect (0600 at least)", n)
	}
	return os.FileMode(n), nil
}

// listenTCP listens on addr and refuses an address that is not loopback
// unless remote is allowed.
func listenTCP(addr string, allowRemote bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageErrorf("serve: --addr %q: want HOST:PORT, e.g. 127.0.0.1:6380", addr)
	}
	if host == "" && !allowRemote {
		return nil, usageErrorf("serve: --addr %q listens on every interface: give a loopback host (127.0.0.1:PORT), or --allow-remote", addr)
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !allowRemote {
		return nil, notLoopback(addr, ip)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, wrap(err, "serve: --addr %s", addr)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !allowRemote && !ip.IsLoopback() {
		ln.Close() // a name that resolved beyond loopback
		return nil, notLoopback(addr, ip)
	}
	return ln, nil
}

// notLoopback is the refusal of an --addr beyond loopback.
func notLoopback(addr string, ip net.IP) error {
	return usageErrorf("serve: --addr %s is not a loopback address (%s): anyone who can reach it could read the cache; pass --allow-remote (and set a password) to serve it", addr, ip)
}

func (e *env) serve(o serveFlags) error {
	if o.addr == "" && o.unix == "" {
		return usageErrorf("serve: give --addr HOST:PORT and/or --unix PATH")
	}
	if !o.noFollow && (o.follow.interval < minFollowInterval || o.follow.interval > maxFollowInterval) {
		return usageErrorf("serve: --interval %s: want between %s and %s", o.follow.interval, minFollowInterval, maxFollowInterval)
	}
	// Before anything listens or runs: the whole server on these settings.
	if err := setProcs("serve", o.procs); err != nil {
		return err
	}
	if e.getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	mode, err := o.parseSocketMode()
	if err != nil {
		return err
	}
	password, err := e.servePassword(o.passwordFile)
	if err != nil {
		return err
	}
	s, logger, err := e.openLogged(o.follow)
	if err != nil {
		return err
	}
	defer s.close()

	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()
	if o.addr != "" {
		ln, err := listenTCP(o.addr, o.allowRemote)
		if err != nil {
			return err
		}
		listeners = append(listeners, ln)
		if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() && password == "" {
			logger.Warn("whycache: serve: listening beyond loopback without a password: anyone who can connect reads and writes the cache", "addr", ln.Addr().String())
		}
	}
	if o.unix != "" {
		uids, gids, err := e.g.trusted()
		if err != nil {
			return err
		}
		ln, err := sockfile.Listen(o.unix, mode, statedir.Trust{Users: uids, Groups: gids})
		if err != nil {
			return wrap(err, "serve: --unix %s", o.unix)
		}
		listeners = append(listeners, ln)
	}

	// Fill the state before the first client, when the log answers; the
	// follow loop keeps it current afterwards.
	if err := s.inst.Update(e.ctx); err != nil && e.ctx.Err() == nil {
		logger.Warn("whycache: serve: first update failed; serving the state as it is", "err", oneLine(err))
	}

	var last atomic.Pointer[whycache.FollowStats]
	cfg := respserver.Config{Instance: s.inst, Password: password, Logger: logger}
	if !o.noFollow {
		cfg.FollowStats = func() (whycache.FollowStats, bool) {
			if p := last.Load(); p != nil {
				return *p, true
			}
			return whycache.FollowStats{}, false
		}
	}
	srv, err := respserver.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(listeners)+1)
	for _, ln := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil {
				errc <- wrap(err, "serve: %s", ln.Addr())
			}
		}()
	}
	if !o.noFollow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.inst.Follow(ctx, whycache.FollowOptions{
				Interval: o.follow.interval,
				Logger:   logger,
				OnPoll:   func(st whycache.FollowStats, _ error) { last.Store(&st) },
			})
			if err != nil && ctx.Err() == nil {
				errc <- wrap(err, "serve: follow")
			}
		}()
	}
	addrs := make([]string, len(listeners))
	for i, ln := range listeners {
		addrs[i] = ln.Addr().String()
		if ul, ok := ln.(*sockfile.Listener); ok {
			addrs[i] = "unix:" + ul.Path()
		}
	}
	logger.Info("whycache: serve: serving", "addrs", addrs, "state", s.inst.StatePath(), "store", s.describe(), "auth", password != "", "follow", !o.noFollow, "procs", runtime.GOMAXPROCS(0), "gogc", gcPercent())
	select {
	case <-e.ctx.Done():
		logger.Info("whycache: serve: stopping on signal")
		err = nil
	case err = <-errc:
	}
	cancel()
	srv.Close()
	wg.Wait()
	return err
}
