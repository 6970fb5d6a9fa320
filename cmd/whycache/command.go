package main

import (
	"flag"
	"fmt"
)

// runFunc runs a command with its positional arguments, after its flags
// were parsed into the variables its setup bound.
type runFunc func(e *env, args []string) error

// command is one subcommand: its help and how to run it.
type command struct {
	name    string // as typed; for a subcommand of a group, the second word
	group   string // the group's name for a subcommand, else ""
	args    string // synopsis of the positional arguments
	summary string // one line for the command list
	help    string // the rest of the help text; may be empty
	minArgs int    // positional arguments required
	maxArgs int    // positional arguments accepted; -1 for any number
	hidden  bool   // left out of the command list (internal use)

	// setup registers the command's flags on fs and returns the function
	// that runs it. Nil for a group.
	setup func(fs *flag.FlagSet) runFunc

	// sub are the subcommands of a group such as "snapshot".
	sub []*command
}

// fullName is the name as typed after "whycache".
func (c *command) fullName() string {
	if c.group != "" {
		return c.group + " " + c.name
	}
	return c.name
}

// checkArgs checks the number of positional arguments.
func (c *command) checkArgs(args []string) error {
	switch {
	case len(args) < c.minArgs && c.minArgs == 1:
		return fmt.Errorf("missing argument %s", c.args)
	case len(args) < c.minArgs:
		return fmt.Errorf("want arguments %s, got %d", c.args, len(args))
	case c.maxArgs >= 0 && len(args) > c.maxArgs && c.maxArgs == 0:
		return fmt.Errorf("takes no arguments, got %q", args[0])
	case c.maxArgs >= 0 && len(args) > c.maxArgs:
		return fmt.Errorf("too many arguments: want %s, got %d", c.args, len(args))
	}
	return nil
}

// commands returns every command in the order of the help text.
func commands() []*command {
	return []*command{
		demoCommand(),
		initSchemaCommand(),
		updateCommand(),
		followCommand(),
		getCommand(),
		setCommand(),
		delCommand(),
		lsCommand(),
		statsCommand(),
		verifyCommand(),
		snapshotCommand(),
		rewriteCommand(),
		serveCommand(),
		demoChildCommand(),
	}
}

// findCommand returns the command called name, or nil.
func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}
