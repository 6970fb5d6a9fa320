package cli

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

var errUsage = errors.New("test: usage")

func TestParse(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    error // nil, flag.ErrHelp or errUsage
		wantStatus int
	}{
		{"flags only", []string{"-n", "3"}, nil, 0},
		{"help", []string{"-h"}, flag.ErrHelp, 0},
		{"unknown flag", []string{"-x"}, errUsage, 2},
		{"positional argument", []string{"-n", "3", "extra"}, errUsage, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Int("n", 0, "")
			err := Parse(fs, tc.args, errUsage)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want one matching %v", err, tc.wantErr)
			}
			var out strings.Builder
			if got := UsageError(&out, err); got != tc.wantStatus {
				t.Errorf("UsageError = %d, want %d", got, tc.wantStatus)
			}
			if printed := out.Len() > 0; printed != (tc.wantStatus != 0) {
				t.Errorf("UsageError printed %q", out.String())
			}
		})
	}
}
