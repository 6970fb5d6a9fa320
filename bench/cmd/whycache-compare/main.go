// Command whycache-compare runs the same workloads on whycache and on the
// caches users compare it with, side by side in one run on one machine,
// and writes the results as a Markdown table, a PNG chart and JSON.
//
// Systems: whycache (FileStore log on disk, state file on /dev/shm), a Go
// map behind a sync.RWMutex and fastcache (in-process, one copy per
// process), bbolt and LMDB (memory-mapped files), and Redis and memcached
// (servers on loopback, started and stopped by the command).
//
// Workloads, on --keys keys of 16 random bytes with 100-byte values:
// random Get, hot-set Get (1,000 keys), random Get from 2 processes at
// once, random Get while another process (or, where the system allows no
// writer process, a goroutine) overwrites keys at --write-rate, bulk load
// in batches of --load-batch, and memory per key. Every system is measured
// --rounds times (rounds interleave the systems, so drifting machine load
// hits all alike); the report gives min/median/max and each median's ratio
// to whycache's.
//
// Usage (from the bench directory):
//
//	go run ./cmd/whycache-compare [--keys 1048576] [--rounds 5] [--duration 2s]
//	    [--systems whycache,redis,...] [--out results] [--quick]
//	    [--skip-missing] [--install=false]
//
// Missing peers (redis-server, memcached, liblmdb) are installed with
// apt-get when the command runs as root (--install, the default); otherwise
// it names what is missing in one line and stops, unless --skip-missing.
// Child processes and servers get SIGKILL when the command dies and are
// stopped on SIGINT; working files go to --work-dir and /dev/shm and are
// removed at the end of each round.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/whycache/whycache/internal/cli"

	"github.com/whycache/whycache/bench/internal/peers"
)

// childEnv is set in the environment of child processes; a test binary
// uses it to run the command instead of its tests.
const childEnv = "WHYCACHE_COMPARE_CHILD"

// config is the parsed command line.
type config struct {
	// Parent settings.
	args        []string // the command line, for the report
	keys        int
	rounds      int
	duration    time.Duration
	writeRate   int
	writeBatch  int
	loadBatch   int
	systems     []string
	out         string
	workDir     string
	quick       bool
	skipMissing bool
	install     bool

	// Child settings.
	role   string
	system string
	mode   peers.Mode
	env    string
	seed   uint64
}

// Limits of the flags.
const (
	maxKeys       = 1 << 26
	maxBatch      = 100000
	quickKeys     = 50000
	quickDuration = 250 * time.Millisecond
	quickRounds   = 2
)

// errUsage marks a bad command line (exit status 2).
var errUsage = errors.New("whycache-compare: usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command and returns its exit status: 0 on success, 1
// on a failure, 2 on a bad command line or missing prerequisites.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return cli.UsageError(stderr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.role == "child" {
		err = runChild(cfg, stdin, stdout)
	} else {
		err = runParent(ctx, cfg, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		if errors.Is(err, errMissing) {
			return 2
		}
		return 1
	}
	return 0
}

// parseFlags parses and checks the command line. Errors wrap errUsage or
// are flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{args: args}
	var systems, mode string
	fs := flag.NewFlagSet("whycache-compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.keys, "keys", 1<<20, "number of workload keys")
	fs.IntVar(&cfg.rounds, "rounds", 5, "measurements of every workload on every system")
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "length of each read phase")
	fs.IntVar(&cfg.writeRate, "write-rate", 10000, "keys/s overwritten during the reads-while-writing phase")
	fs.IntVar(&cfg.writeBatch, "write-batch", 100, "keys per write batch in the reads-while-writing phase")
	fs.IntVar(&cfg.loadBatch, "load-batch", 1000, "keys per batch in the bulk load")
	fs.StringVar(&systems, "systems", "", "comma-separated `names` of the systems to run (default: all: "+strings.Join(systemNames(), ",")+")")
	fs.StringVar(&cfg.out, "out", "results", "`directory` for results.md, results.png and results.json")
	fs.StringVar(&cfg.workDir, "work-dir", os.TempDir(), "`directory` on disk for the systems' files (logs, databases); removed after each round")
	fs.BoolVar(&cfg.quick, "quick", false, fmt.Sprintf("a small run: %d keys, %v phases, %d rounds (unless set explicitly)", quickKeys, quickDuration, quickRounds))
	fs.BoolVar(&cfg.skipMissing, "skip-missing", false, "leave out systems whose prerequisites are missing instead of stopping")
	fs.BoolVar(&cfg.install, "install", true, "install missing Debian packages with apt-get when running as root")
	fs.StringVar(&cfg.role, "role", "", "internal: child")
	fs.StringVar(&cfg.system, "system", "", "internal: the child's system")
	fs.StringVar(&mode, "mode", "", "internal: the child's mode")
	fs.StringVar(&cfg.env, "env", "", "internal: the child's environment (JSON)")
	fs.Uint64Var(&cfg.seed, "seed", 1, "internal: the child's random seed")
	if err := cli.Parse(fs, args, errUsage); err != nil {
		return cfg, err
	}
	if cfg.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["keys"] {
			cfg.keys = quickKeys
		}
		if !set["duration"] {
			cfg.duration = quickDuration
		}
		if !set["rounds"] {
			cfg.rounds = quickRounds
		}
	}
	cfg.mode = peers.Mode(mode)
	if systems != "" {
		cfg.systems = strings.Split(systems, ",")
	} else {
		cfg.systems = systemNames()
	}
	return cfg, checkConfig(cfg)
}

// checkConfig reports a bad setting with an error wrapping errUsage.
func checkConfig(cfg config) error {
	switch {
	case cfg.role != "" && cfg.role != "child":
		return fmt.Errorf("%w: unknown --role %q", errUsage, cfg.role)
	case cfg.role == "child" && cfg.mode != peers.ModeLoad && cfg.mode != peers.ModeRead && cfg.mode != peers.ModeWrite:
		return fmt.Errorf("%w: unknown --mode %q", errUsage, cfg.mode)
	case cfg.keys < 1 || cfg.keys > maxKeys:
		return fmt.Errorf("%w: --keys %d out of range [1, %d]", errUsage, cfg.keys, maxKeys)
	case cfg.rounds < 1:
		return fmt.Errorf("%w: --rounds must be at least 1", errUsage)
	case cfg.duration <= 0:
		return fmt.Errorf("%w: --duration must be positive", errUsage)
	case cfg.writeRate < 1:
		return fmt.Errorf("%w: --write-rate must be at least 1", errUsage)
	case cfg.writeBatch < 1 || cfg.writeBatch > maxBatch:
		return fmt.Errorf("%w: --write-batch %d out of range [1, %d]", errUsage, cfg.writeBatch, maxBatch)
	case cfg.loadBatch < 1 || cfg.loadBatch > maxBatch:
		return fmt.Errorf("%w: --load-batch %d out of range [1, %d]", errUsage, cfg.loadBatch, maxBatch)
	}
	seen := map[string]bool{}
	for _, name := range cfg.systems {
		if _, ok := peers.Lookup(name); !ok {
			return fmt.Errorf("%w: unknown system %q (known: %s)", errUsage, name, strings.Join(systemNames(), ", "))
		}
		if seen[name] {
			return fmt.Errorf("%w: system %q listed twice", errUsage, name)
		}
		seen[name] = true
	}
	if cfg.role == "" && !seen["whycache"] {
		return fmt.Errorf("%w: --systems must include whycache (every ratio is to whycache)", errUsage)
	}
	return nil
}

// systemNames lists every system's name in report order.
func systemNames() []string {
	var names []string
	for _, s := range peers.All() {
		names = append(names, s.Info().Name)
	}
	return names
}
