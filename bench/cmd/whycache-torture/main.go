// Command whycache-torture runs whycache's reliability scenarios over and
// over for a chosen time and checks after every run that nothing was lost:
//
//   - crash: two child processes write to one state file and log (Set,
//     SetMulti, Delete, DeleteMulti, Update) and are killed with SIGKILL at
//     random instants and restarted; afterwards the state must pass Check,
//     and after an Update it must equal a replay of the log.
//   - convergence: four writer processes on two state files (two
//     "machines", two writers each) write and Update concurrently; at the
//     end both states equal the log replay.
//   - outage (--store mysql only): a loopback TCP proxy in front of MySQL
//     is cut and restored at random while writers, local readers and
//     Update loops run on two states; every acknowledged write must be in
//     the log and in both states, and no local read may fail meanwhile.
//   - faults: four writer processes on two states while the operator's
//     faults are injected one at a time (a restore of the log from a
//     backup, a machine pointed at another log, a flipped byte in the log,
//     a lost MANIFEST, a stopped writer, a removed state file, an older
//     snapshot loaded); after each, what it must cause is checked (an
//     error wrapping the right sentinel, or a rebuild), and then that both
//     states, new readers and every writer agree with a fresh replay of the
//     log and that the log holds every acknowledged write. See faults.go.
//
// Every scenario run prints what it tried (kills, records, keys compared);
// the last line is "N passed, M failed", and the exit status is 1 if any
// run failed.
//
// Usage (from the bench directory):
//
//	go run ./cmd/whycache-torture --for 10m [--store file|mysql] [--dsn DSN]
//
// --scenarios and --faults narrow a run to some scenarios and fault kinds,
// to reproduce a failure; --seed is printed for the record, but process
// timing makes runs differ anyway.
//
// The MySQL DSN defaults to $WHYCACHE_TEST_DSN (for example
// root@tcp(127.0.0.1:3306)/test); each run creates its own tables and
// drops them afterwards. Files go under --dir and /dev/shm and are removed
// after each run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/whycache/whycache/internal/cli"
)

// childEnv is set in the environment of child processes; a test binary
// uses it to run the command instead of its tests.
const childEnv = "WHYCACHE_TORTURE_CHILD"

// dsnEnv carries the MySQL DSN to child processes (kept off their command
// lines, which other users can read).
const dsnEnv = "WHYCACHE_TORTURE_DSN"

// Store kinds.
const (
	storeFile  = "file"
	storeMySQL = "mysql"
)

// config is the parsed command line.
type config struct {
	total time.Duration
	slice time.Duration
	store string
	dsn   string
	dir   string
	seed  uint64
	// scenarios and faults, when not empty, name the scenarios to run and
	// the fault kinds the faults scenario injects.
	scenarios, faults []string

	// Child settings.
	role        string
	state       string
	log         string // file store directory
	segment     int64  // file store segment size
	table       string // MySQL table
	keys        int
	updateEvery int
}

// childLog is the log a child process was told to use.
func (cfg config) childLog() logRef {
	return logRef{dir: cfg.log, segment: cfg.segment, dsn: cfg.dsn, table: cfg.table}
}

// errUsage marks a bad command line (exit status 2).
var errUsage = errors.New("whycache-torture: usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command and returns its exit status: 0 when every
// scenario run passed, 1 on a failure, 2 on a bad command line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return cli.UsageError(stderr, err)
	}
	if cfg.role != "" {
		if err := runChild(cfg, stdin, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed, err := runParent(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// runChild runs the child process role cfg.role.
func runChild(cfg config, stdin io.Reader, stdout io.Writer) error {
	switch cfg.role {
	case roleFaultWriter:
		return runFaultWriter(cfg, stdin, stdout)
	case roleHolder:
		return runHolder(cfg, stdin, stdout)
	}
	return runWriter(cfg, stdin, stdout)
}

// parseFlags parses and checks the command line.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("whycache-torture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.total, "for", time.Minute, "how long to keep running scenarios")
	fs.DurationVar(&cfg.slice, "slice", 0, "length of one scenario run (default: a quarter of --for, between 2s and 30s)")
	fs.StringVar(&cfg.store, "store", storeFile, "log store: file or mysql")
	fs.StringVar(&cfg.dsn, "dsn", os.Getenv("WHYCACHE_TEST_DSN"), "MySQL DSN for --store mysql (default $WHYCACHE_TEST_DSN)")
	fs.StringVar(&cfg.dir, "dir", os.TempDir(), "`directory` for the file store logs")
	fs.Uint64Var(&cfg.seed, "seed", uint64(time.Now().UnixNano()), "random seed (printed, for the record)")
	scenarios := fs.String("scenarios", "", "comma-separated `names` of the scenarios to run (default: all the store has)")
	faults := fs.String("faults", "", "comma-separated `kinds` of fault the faults scenario injects (default: all the store has)")
	fs.StringVar(&cfg.role, "role", "", "internal: writer, fault-writer or holder")
	fs.StringVar(&cfg.state, "state", "", "internal: the writer's state file")
	fs.StringVar(&cfg.log, "log", "", "internal: the writer's file store directory")
	fs.Int64Var(&cfg.segment, "segment-size", 0, "internal: the writer's file store segment size (0: the default)")
	fs.StringVar(&cfg.table, "table", "", "internal: the writer's MySQL table")
	fs.IntVar(&cfg.keys, "keys", 1000, "internal: size of the writers' key space")
	fs.IntVar(&cfg.updateEvery, "update-every", 10, "internal: a writer calls Update once per this many operations")
	if err := cli.Parse(fs, args, errUsage); err != nil {
		return cfg, err
	}
	writes := cfg.role == roleWriter || cfg.role == roleFaultWriter
	if writes {
		cfg.dsn = os.Getenv(dsnEnv)
	}
	switch {
	case cfg.role != "" && !writes && cfg.role != roleHolder:
		return cfg, fmt.Errorf("%w: unknown --role %q", errUsage, cfg.role)
	case cfg.store != storeFile && cfg.store != storeMySQL:
		return cfg, fmt.Errorf("%w: --store must be file or mysql, not %q", errUsage, cfg.store)
	case cfg.store == storeMySQL && cfg.dsn == "":
		return cfg, fmt.Errorf("%w: --store mysql needs --dsn or $WHYCACHE_TEST_DSN, e.g. 'root@tcp(127.0.0.1:3306)/test'", errUsage)
	case cfg.role == "" && cfg.total < time.Second:
		return cfg, fmt.Errorf("%w: --for must be at least 1s", errUsage)
	case cfg.slice < 0:
		return cfg, fmt.Errorf("%w: --slice must not be negative", errUsage)
	case cfg.keys < 1 || cfg.updateEvery < 1:
		return cfg, fmt.Errorf("%w: --keys and --update-every must be positive", errUsage)
	case writes && (cfg.state == "" || (cfg.log == "") == (cfg.table == "")):
		return cfg, fmt.Errorf("%w: a writer needs --state and one of --log or --table", errUsage)
	case cfg.role == roleHolder && cfg.state == "":
		return cfg, fmt.Errorf("%w: a holder needs --state", errUsage)
	case cfg.segment < 0:
		return cfg, fmt.Errorf("%w: --segment-size must not be negative", errUsage)
	}
	if *scenarios != "" {
		cfg.scenarios = strings.Split(*scenarios, ",")
	}
	if *faults != "" {
		cfg.faults = strings.Split(*faults, ",")
	}
	for _, name := range cfg.scenarios {
		if !slices.Contains(scenarioNames, name) {
			return cfg, fmt.Errorf("%w: unknown scenario %q in --scenarios (known: %s)", errUsage, name, strings.Join(scenarioNames, ", "))
		}
	}
	for _, kind := range cfg.faults {
		if !slices.ContainsFunc(faultKinds, func(k faultKind) bool { return k.name == kind }) {
			return cfg, fmt.Errorf("%w: unknown fault %q in --faults", errUsage, kind)
		}
	}
	if len(cfg.scenarios) > 0 && cfg.store != storeMySQL && !slices.ContainsFunc(cfg.scenarios, func(name string) bool { return name != "outage" }) {
		return cfg, fmt.Errorf("%w: the outage scenario needs --store mysql", errUsage)
	}
	if len(cfg.faults) > 0 && cfg.store != storeFile && !slices.ContainsFunc(cfg.faults, func(kind string) bool { return kind != "lost-manifest" }) {
		return cfg, fmt.Errorf("%w: the lost-manifest fault needs --store file", errUsage)
	}
	if cfg.slice == 0 {
		cfg.slice = min(max(cfg.total/4, 2*time.Second), 30*time.Second)
	}
	return cfg, nil
}
