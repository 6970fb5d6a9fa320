package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/whycache/whycache/bench/internal/peers"
)

// errMissing is wrapped by the error for missing prerequisites (exit
// status 2).
var errMissing = errors.New("whycache-compare: missing prerequisites")

// skippedSystem is a system left out of the run and why.
type skippedSystem struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// prepareSystems resolves cfg.systems and checks their prerequisites.
// Missing Debian packages are installed with apt-get when running as root
// with cfg.install; what is still missing stops the command with one line
// saying what to install, or, with cfg.skipMissing, is left out.
func prepareSystems(ctx context.Context, cfg config, stderr io.Writer) ([]peers.System, []skippedSystem, error) {
	var systems []peers.System
	for _, name := range cfg.systems {
		s, _ := peers.Lookup(name) // checked by parseFlags
		systems = append(systems, s)
	}
	missing := checkAll(systems)
	if pkgs := packagesOf(missing); len(pkgs) > 0 && cfg.install && os.Geteuid() == 0 {
		fmt.Fprintf(stderr, "whycache-compare: installing %s with apt-get\n", strings.Join(pkgs, " "))
		if err := aptInstall(ctx, pkgs, stderr); err != nil {
			return nil, nil, err
		}
		missing = checkAll(systems)
	}
	if len(missing) == 0 {
		return systems, nil, nil
	}
	if !cfg.skipMissing {
		return nil, nil, missingError(missing)
	}
	var kept []peers.System
	var skipped []skippedSystem
	for _, s := range systems {
		if err, ok := missing[s.Info().Name]; ok {
			skipped = append(skipped, skippedSystem{Name: s.Info().Name, Reason: err.Error()})
			fmt.Fprintf(stderr, "whycache-compare: skipping %v\n", err)
			continue
		}
		kept = append(kept, s)
	}
	return kept, skipped, nil
}

// checkAll returns the Check errors of systems by name.
func checkAll(systems []peers.System) map[string]*peers.MissingError {
	missing := map[string]*peers.MissingError{}
	for _, s := range systems {
		if err := s.Check(); err != nil {
			var m *peers.MissingError
			if !errors.As(err, &m) {
				m = &peers.MissingError{System: s.Info().Name, What: err.Error()}
			}
			missing[s.Info().Name] = m
		}
	}
	return missing
}

// packagesOf lists the Debian packages that provide what is missing.
func packagesOf(missing map[string]*peers.MissingError) []string {
	var pkgs []string
	for _, name := range systemNames() { // stable order
		if m, ok := missing[name]; ok {
			pkgs = append(pkgs, m.Packages...)
		}
	}
	return pkgs
}

// missingError is the one-line explanation of what is missing.
func missingError(missing map[string]*peers.MissingError) error {
	var what []string
	for _, name := range systemNames() {
		if m, ok := missing[name]; ok {
			what = append(what, m.Error())
		}
	}
	hint := "pass --skip-missing to compare without them"
	if pkgs := packagesOf(missing); len(pkgs) > 0 {
		hint = "install with `apt-get install -y " + strings.Join(pkgs, " ") + "` as root (the command does it itself when run as root), or " + hint
	}
	return fmt.Errorf("%w: %s; %s", errMissing, strings.Join(what, "; "), hint)
}

// aptInstall runs apt-get update and apt-get install -y pkgs, with their
// output on w.
func aptInstall(ctx context.Context, pkgs []string, w io.Writer) error {
	for _, args := range [][]string{{"update", "-q"}, append([]string{"install", "-y", "-q"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Stdout, cmd.Stderr = w, w
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%w: apt-get %s: %v", errMissing, args[0], err)
		}
	}
	return nil
}
