package testproc

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
)

// TestHelperEcho is the helper of the tests below: it prints "n i" for i
// below its argument n, then echoes every stdin line back until EOF, or
// waits for a signal when the argument is "hang".
func TestHelperEcho(t *testing.T) {
	arg := Arg(t)
	if arg == "hang" {
		fmt.Println("ready")
		select {}
	}
	n, err := strconv.Atoi(arg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		fmt.Println("n", i)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println("echo", in.Text())
	}
}

func TestArgSkipsOutsideAHelper(t *testing.T) {
	if _, ok := os.LookupEnv(argEnv); ok {
		t.Skip("inside a helper")
	}
	skipped := false
	t.Run("helper", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Arg(t)
	})
	if !skipped {
		t.Fatal("Arg did not skip a test run normally")
	}
}

func TestStartAwaitSendWait(t *testing.T) {
	p := Start(t, "echo", "TestHelperEcho", "3")
	i, line, ok := p.Await(0, HasPrefix("n 2"))
	if !ok || i != 2 || line != "n 2" {
		t.Fatalf("Await(n 2) = %d %q %v", i, line, ok)
	}
	if err := p.Send("hello"); err != nil {
		t.Fatal(err)
	}
	if _, line, ok := p.Await(3, Is("echo hello")); !ok {
		t.Fatalf("no echo: %q", line)
	}
	p.CloseStdin()
	if err := p.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	var got []string
	for line := range p.Lines() {
		got = append(got, line)
	}
	if want := []string{"n 0", "n 1", "n 2", "echo hello"}; !slices.Equal(got[:4], want) {
		t.Fatalf("lines %q, want %q first", got, want)
	}
	if _, _, ok := p.Await(p.Len(), nil); ok {
		t.Fatal("Await after the end found a line")
	}
	if p.Signaled() {
		t.Fatal("a clean exit reported as signaled")
	}
}

func TestKill(t *testing.T) {
	p := Start(t, "hang", "TestHelperEcho", "hang")
	if _, _, ok := p.Await(0, Is("ready")); !ok {
		t.Fatalf("helper ended: %s", p.Tail(10))
	}
	p.Kill(t)
	if !p.Signaled() {
		t.Fatal("Kill: not signaled")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited not closed after Kill")
	}
}
