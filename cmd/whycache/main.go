// Command whycache operates a whycache deployment from the shell: it reads
// and writes keys, keeps a machine's shared state in step with the change
// log (once with update, or as the follow daemon with Prometheus metrics),
// exports and imports snapshots, compacts the log, and runs a
// self-contained demo.
//
// Usage:
//
//	whycache [global flags] COMMAND [flags] [args]
//	whycache help [COMMAND]
//
// Run "whycache --help" for the list of commands, and "whycache demo" for
// a tour that needs no setup. The log is chosen with --store file:DIR or
// --store mysql:DSN (or WHYCACHE_STORE), the state file with --state PATH
// or --name NAME (or WHYCACHE_STATE).
//
// Errors are one line on stderr, "whycache: <what>: <why>". Exit codes: 0
// success, 1 the operation failed, 2 usage error, 3 key not found (get), 4
// verification failed (verify).
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

	"github.com/whycache/whycache/logstore"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
	exitVerify   = 4
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. Output
// goes to stdout and stderr only; it never exits the process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first SIGINT or SIGTERM cancels the command, which stops
		// within a second and says what it did; a second one ends the
		// process at once.
		<-ctx.Done()
		stop()
	}()
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	err := e.dispatch(args)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	msg := oneLine(err)
	if a := advice(err); a != "" && a != "interrupted" && !strings.Contains(msg, a) && !(errors.Is(err, logstore.ErrNoLog) && strings.Contains(msg, "init-schema")) {
		msg += " (" + a + ")"
	}
	fmt.Fprintln(stderr, "whycache: "+msg)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// dispatch parses the global flags and runs the command they lead to.
func (e *env) dispatch(args []string) error {
	fs := newFlagSet("whycache")
	e.g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.printMainHelp()
			return flag.ErrHelp
		}
		return usageErrorf("%v (see 'whycache --help')", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		e.printMainHelp()
		return usageErrorf("no command given (see the list above)")
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		return e.help(rest)
	}
	cmd := findCommand(name)
	if cmd == nil {
		return usageErrorf("unknown command %q (see 'whycache --help')", name)
	}
	return e.runCommand(cmd, rest)
}

// help prints the help of the main command or of one command.
func (e *env) help(args []string) error {
	if len(args) == 0 {
		e.printMainHelp()
		return nil
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		return usageErrorf("help: unknown command %q (see 'whycache --help')", args[0])
	}
	if len(cmd.sub) > 0 && len(args) > 1 {
		for _, s := range cmd.sub {
			if s.name == args[1] {
				cmd = s
				break
			}
		}
	}
	e.printCommandHelp(cmd)
	return nil
}

// runCommand parses the flags and arguments of cmd and runs it.
func (e *env) runCommand(cmd *command, args []string) error {
	if len(cmd.sub) > 0 {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			e.printCommandHelp(cmd)
			if len(args) == 0 {
				return usageErrorf("%s: missing subcommand (see above)", cmd.name)
			}
			return flag.ErrHelp
		}
		for _, s := range cmd.sub {
			if s.name == args[0] {
				return e.runCommand(s, args[1:])
			}
		}
		return usageErrorf("%s: unknown subcommand %q (see 'whycache %s --help')", cmd.name, args[0], cmd.name)
	}
	fs := newFlagSet(cmd.name)
	e.g.register(fs)
	runFn := cmd.setup(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.printCommandHelp(cmd)
			return flag.ErrHelp
		}
		return usageErrorf("%s: %v (see 'whycache %s --help')", cmd.name, err, cmd.name)
	}
	if err := cmd.checkArgs(pos); err != nil {
		return usageErrorf("%s: %v (see 'whycache %s --help')", cmd.name, err, cmd.name)
	}
	if err := e.g.resolve(e.getenv); err != nil {
		return err
	}
	return runFn(e, pos)
}

// exitError carries an exit code other than exitFailure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf returns an error with exit code 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// withCode gives err the exit code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// oneLine renders err as one line (joined errors separated by "; ")
// without the leading "whycache: " of a library error: main prints its
// own. Errors carry that prefix once and first (the library's rule, and
// wrap's), so nothing else needs removing.
func oneLine(err error) string {
	msg := strings.TrimPrefix(err.Error(), "whycache: ")
	return strings.ReplaceAll(msg, "\n", "; ")
}

// wrap returns err with the command's context in front: "context:
// cause", the context formatted from format and args. A library error's
// leading "whycache: " is dropped from the cause (main prints one before
// every message), so no message says it twice. errors.Is and errors.As
// see the cause.
func wrap(err error, format string, args ...any) error {
	return &contextError{context: fmt.Sprintf(format, args...), err: err}
}

// contextError is an error with the command's context; see wrap.
type contextError struct {
	context string
	err     error
}

func (e *contextError) Error() string {
	return e.context + ": " + strings.TrimPrefix(e.err.Error(), "whycache: ")
}

func (e *contextError) Unwrap() error { return e.err }
