package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// mainModule is the module path of the library and its CLI.
const mainModule = "github.com/whycache/whycache"

// mainModuleDir finds the main module's directory: the nearest directory
// at or above the working directory whose go.mod declares mainModule.
func mainModuleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+mainModule+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the whycache module (go.mod of " + mainModule + ") is not at or above the working directory: run from the repository's bench directory, or pass -whycache BINARY")
		}
		dir = parent
	}
}

// buildCLI builds cmd/whycache of the main module into dir and returns the
// binary's path.
func buildCLI(ctx context.Context, dir string) (string, error) {
	root, err := mainModuleDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "whycache")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/whycache")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/whycache in %s: %v\n%s", root, err, out)
	}
	return bin, nil
}

// supportsFlag reports whether the whycache binary knows the global flag
// name (without dashes), from its --help.
func supportsFlag(ctx context.Context, bin, name string) (bool, error) {
	out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	if err != nil && len(out) == 0 {
		return false, fmt.Errorf("%s --help: %w", bin, err)
	}
	return strings.Contains(string(out), "-"+name+" "), nil
}
