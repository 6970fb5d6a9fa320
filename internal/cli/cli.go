// Package cli holds the command-line handling shared by the benchmark
// commands (whycache-readbench, whycache-compare, whycache-torture).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Parse parses args with fs and rejects positional arguments. It returns
// flag.ErrHelp for -h, and wraps other problems in errUsage.
func Parse(fs *flag.FlagSet, args []string, errUsage error) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// UsageError reports an error of Parse or of a command's own flag checks
// on w (flag.ErrHelp was already answered by the flag package) and
// returns the exit status: 0 for flag.ErrHelp, else 2.
func UsageError(w io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(w, err)
	return 2
}
