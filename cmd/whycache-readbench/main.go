// Command whycache-readbench measures how lock-free reads of the shared
// state scale across processes, and how much one writing process slows them
// down: the "Read scaling" and "Reads under writes" targets of the
// specification (section 5).
//
// It builds a state file holding the benchmark workload (by default
// 1,048,576 keys of 16 random bytes with 100-byte values, the same keys as
// the prefixtree benchmarks), or reuses one given with --state, then
// re-executes itself as reader and writer processes and runs four
// scenarios: 1 reader, 2 readers, 1 reader + 1 writer, 2 readers + 1
// writer. Readers do uniformly random AppendGets for --duration after a
// common start signal; the writer overwrites random keys with new values at
// --write-rate keys/s in batches of --write-batch. Each scenario runs
// --rounds times (rounds interleave the scenarios, so drifting machine load
// hits all of them alike) and the command prints reads/s per scenario and
// the ratios with their targets, as a table or, with --json, as JSON.
//
// Usage:
//
//	whycache-readbench [--keys N] [--duration 5s] [--rounds 3]
//	    [--write-rate 100000] [--write-batch 100] [--state PATH] [--json]
//
// Nothing is pinned to CPUs. On a 2-core machine the 2 readers + writer
// scenario runs three busy processes on two cores; the "under writes"
// target is judged with 1 reader + 1 writer.
//
// Child processes get SIGKILL when the parent dies, and also stop when their
// standard input closes. A state file built in the default location (a
// temporary directory under /dev/shm, else os.TempDir) is removed at exit; a
// --state file is kept and reused by later runs with the same --keys.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/whycache/whycache/internal/cli"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// childEnv is set in the environment of the child processes. The command
// itself does not need it (the role is a flag); a test binary uses it to
// run the command instead of its tests.
const childEnv = "WHYCACHE_READBENCH_CHILD"

// Roles of a process.
const (
	roleParent = ""
	roleReader = "reader"
	roleWriter = "writer"
)

// config is the parsed command line.
type config struct {
	role       string
	state      string
	keys       int
	duration   time.Duration
	rounds     int
	writeRate  int
	writeBatch int
	seed       uint64
	json       bool
}

// errUsage marks a bad command line (exit status 2).
var errUsage = errors.New("whycache-readbench: usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command with args and returns the exit status: 0 on
// success, 1 on a failure, 2 on a bad command line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return cli.UsageError(stderr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cfg.role {
	case roleReader:
		err = runReader(cfg, stdin, stdout)
	case roleWriter:
		err = runWriter(cfg, stdin, stdout)
	default:
		err = runParent(ctx, cfg, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// parseFlags parses and checks the command line. Errors wrap errUsage or
// are flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("whycache-readbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.role, "role", roleParent, "internal: `reader` or writer child process")
	fs.StringVar(&cfg.state, "state", "", "state file `path` to build or reuse (default: a temporary file under /dev/shm or os.TempDir, removed at exit)")
	fs.IntVar(&cfg.keys, "keys", 1<<20, "number of workload keys")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long readers read in each run")
	fs.IntVar(&cfg.rounds, "rounds", 3, "runs of each scenario")
	fs.IntVar(&cfg.writeRate, "write-rate", 100000, "keys/s the writer overwrites")
	fs.IntVar(&cfg.writeBatch, "write-batch", 100, "keys per writer batch (one batch every write-batch/write-rate seconds)")
	fs.Uint64Var(&cfg.seed, "seed", 1, "internal: random seed of a child process")
	fs.BoolVar(&cfg.json, "json", false, "print the results as JSON")
	if err := cli.Parse(fs, args, errUsage); err != nil {
		return cfg, err
	}
	switch {
	case cfg.role != roleParent && cfg.role != roleReader && cfg.role != roleWriter:
		return cfg, fmt.Errorf("%w: unknown --role %q", errUsage, cfg.role)
	case cfg.role != roleParent && cfg.state == "":
		return cfg, fmt.Errorf("%w: --role %s needs --state", errUsage, cfg.role)
	case cfg.keys < 1 || cfg.keys > maxKeys:
		return cfg, fmt.Errorf("%w: --keys %d out of range [1, %d]", errUsage, cfg.keys, maxKeys)
	case cfg.duration <= 0:
		return cfg, fmt.Errorf("%w: --duration must be positive", errUsage)
	case cfg.rounds < 1:
		return cfg, fmt.Errorf("%w: --rounds must be at least 1", errUsage)
	case cfg.writeRate < 1:
		return cfg, fmt.Errorf("%w: --write-rate must be at least 1", errUsage)
	case cfg.writeBatch < 1 || cfg.writeBatch > maxWriteBatch:
		return cfg, fmt.Errorf("%w: --write-batch %d out of range [1, %d]", errUsage, cfg.writeBatch, maxWriteBatch)
	}
	return cfg, nil
}
