package main

import (
	"flag"
	"fmt"
	"strings"
)

const mainHelpHead = `whycache - a shared-memory key/value cache kept in step with a change log.

Every process on a machine reads the same state file (reads are memory
reads); writes are committed to the change log first, then applied to the
state; other machines apply the log with "update" or the "follow" daemon.

Usage:
  whycache [global flags] COMMAND [flags] [args]
  whycache help COMMAND        (or: whycache COMMAND --help)

Start here:
  whycache demo                a self-contained tour; needs no setup

Commands:
`

const mainHelpTail = `
The log (--store) and the state file (--state or --name) are needed by every
command but demo. Flags go before or after the command; "--" ends the flags
(whycache set -- KEY -1).

Exit codes:
  0  success
  1  the operation failed (store unreachable, state unusable, ...)
  2  usage error (bad flag, argument or --store)
  3  key not found (get)
  4  verification failed (verify)

Examples:
  export WHYCACHE_STORE=file:/var/lib/whycache/log
  whycache init-schema                 # create the log
  whycache update                      # fill this machine's state from the log
  whycache set greeting hello
  whycache get greeting
  whycache ls --prefix gr --values
  whycache --store 'mysql:app:PASSWORD@tcp(db:3306)/cache' --name app follow --metrics-addr :9100
`

// printMainHelp prints the command list and global help to stdout.
func (e *env) printMainHelp() {
	var b strings.Builder
	b.WriteString(mainHelpHead)
	for _, c := range commands() {
		if c.hidden {
			continue
		}
		if len(c.sub) > 0 {
			for _, s := range c.sub {
				fmt.Fprintf(&b, "  %-28s %s\n", s.fullName()+" "+s.args, s.summary)
			}
			continue
		}
		fmt.Fprintf(&b, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	b.WriteString("\nGlobal flags:\n")
	writeFlags(&b, globalFlagSet())
	b.WriteString(mainHelpTail)
	fmt.Fprint(e.stdout, b.String())
}

// printCommandHelp prints the help of one command (or group) to stdout.
func (e *env) printCommandHelp(c *command) {
	var b strings.Builder
	if len(c.sub) > 0 {
		fmt.Fprintf(&b, "%s\n\nUsage:\n", c.summary)
		for _, s := range c.sub {
			fmt.Fprintf(&b, "  whycache %s %s\n      %s\n", s.fullName(), s.args, s.summary)
		}
		fmt.Fprintf(&b, "\nRun 'whycache %s SUBCOMMAND --help' for details.\n", c.name)
		fmt.Fprint(e.stdout, b.String())
		return
	}
	fmt.Fprintf(&b, "%s\n\nUsage:\n  whycache %s [flags] %s\n", c.summary, c.fullName(), c.args)
	if c.help != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimSpace(c.help))
	}
	fs := newFlagSet(c.name)
	c.setup(fs)
	if hasFlags(fs) {
		b.WriteString("\nFlags:\n")
		writeFlags(&b, fs)
	}
	b.WriteString("\nGlobal flags (see 'whycache --help'): --store, --table, --format, --state, --name, --json, --progress\n")
	b.WriteString("Exit codes: 0 success, 1 failure, 2 usage error, 3 key not found (get), 4 verification failed (verify)\n")
	fmt.Fprint(e.stdout, b.String())
}

// globalFlagSet returns a flag set holding only the global flags, with
// empty defaults (the help never shows values from the command line or the
// environment, which may hold a password).
func globalFlagSet() *flag.FlagSet {
	fs := newFlagSet("whycache")
	var g globals
	g.register(fs)
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// writeFlags writes one entry per flag in the "--name TYPE" form.
func writeFlags(b *strings.Builder, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		head := "--" + f.Name
		if typ != "" {
			head += " " + typ
		}
		if len(head) <= 20 {
			fmt.Fprintf(b, "  %-20s  %s", head, usage)
		} else {
			fmt.Fprintf(b, "  %s\n  %-20s  %s", head, "", usage)
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			fmt.Fprintf(b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
}
