package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// childEnv makes the test binary act as a child: it runs the behaviour
// named by the variable instead of the tests.
const childEnv = "PROC_TEST_CHILD"

type msg struct {
	N    int    `json:"n"`
	Text string `json:"text,omitempty"`
}

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "echo": // doubles every N until stdin closes
		c := NewConn(os.Stdin, os.Stdout)
		for {
			var in msg
			if err := c.Recv(&in); err == io.EOF {
				os.Exit(0)
			} else if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			c.Send(msg{N: 2 * in.N})
		}
	case "die":
		fmt.Fprintln(os.Stderr, "the child's last words")
		os.Exit(3)
	case "garbage":
		fmt.Println("not json")
		io.Copy(io.Discard, os.Stdin)
	case "silent":
		io.Copy(io.Discard, os.Stdin)
	}
}

func startChild(t *testing.T, behaviour string) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(context.Background(), behaviour, exe, nil, []string{childEnv + "=" + behaviour, "GORACE=atexit_sleep_ms=0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

func TestRoundTrip(t *testing.T) {
	c := startChild(t, "echo")
	for _, n := range []int{1, 21, -4} {
		if err := c.Send(msg{N: n}); err != nil {
			t.Fatal(err)
		}
		var got msg
		if err := c.Recv(&got); err != nil {
			t.Fatal(err)
		}
		if got.N != 2*n {
			t.Errorf("sent %d, got %d back, want %d", n, got.N, 2*n)
		}
	}
	if err := c.Finish(); err != nil {
		t.Errorf("Finish: %v", err)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		behaviour string
		timeout   time.Duration
		want      string // in the error
	}{
		{"die", 0, "the child's last words"},
		{"garbage", 0, `sent "not json"`},
		{"silent", 200 * time.Millisecond, "sent nothing for 200ms"},
	}
	for _, tc := range tests {
		t.Run(tc.behaviour, func(t *testing.T) {
			c := startChild(t, tc.behaviour)
			c.Timeout = tc.timeout
			var m msg
			err := c.Recv(&m)
			if !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Recv: %v, want ErrChild mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFinishReportsExitStatus(t *testing.T) {
	c := startChild(t, "die")
	err := c.Finish()
	if !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Finish: %v, want ErrChild with exit status 3", err)
	}
}
