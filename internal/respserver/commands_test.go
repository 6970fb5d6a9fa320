package respserver

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCommands runs every command and its errors, in order, on one
// connection, and compares the replies with what Redis answers.
func TestCommands(t *testing.T) {
	addr, _ := startServer(t, "")
	rc := dialRaw(t, addr)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "PONG"},
		{[]string{"ping", "hello"}, `"hello"`},
		{[]string{"PING", "a", "b"}, "-ERR wrong number of arguments for 'ping' command"},
		{[]string{"ECHO", "x y"}, `"x y"`},
		{[]string{"ECHO"}, "-ERR wrong number of arguments for 'echo' command"},
		{[]string{"GET", "k"}, "(nil)"},
		{[]string{"SET", "k", "v1"}, "OK"},
		{[]string{"gEt", "k"}, `"v1"`},
		{[]string{"SET", "k", ""}, "OK"},
		{[]string{"GET", "k"}, `""`},
		{[]string{"SET", "k", "v2"}, "OK"},
		{[]string{"SET", "bin", "a\x00\r\nb"}, "OK"},
		{[]string{"GET", "bin"}, `"a\x00\r\nb"`},
		{[]string{"GET"}, "-ERR wrong number of arguments for 'get' command"},
		{[]string{"GET", "a", "b"}, "-ERR wrong number of arguments for 'get' command"},
		{[]string{"GET", ""}, "(nil)"},
		{[]string{"SET", "k"}, "-ERR wrong number of arguments for 'set' command"},
		{[]string{"SET", "", "v"}, "-ERR empty keys are not supported by whycache"},
		{[]string{"SET", "k", "v", "NX"}, "-ERR SET NX and XX are not supported: a whycache write is an unconditional log commit, and a check of the local state before it would not hold across machines"},
		{[]string{"SET", "k", "v", "xx"}, "-ERR SET NX and XX are not supported: a whycache write is an unconditional log commit, and a check of the local state before it would not hold across machines"},
		{[]string{"SET", "k", "v", "GET"}, "-ERR SET GET is not supported: a whycache write does not read and replace in one step"},
		{[]string{"SET", "k", "v", "NX", "XX"}, "-ERR syntax error"},
		{[]string{"SET", "k", "v", "FOO"}, "-ERR syntax error"},
		{[]string{"SET", "k", "v", "EX"}, "-ERR syntax error"},
		{[]string{"SET", "k", "v", "EX", "ten"}, "-ERR value is not an integer or out of range"},
		{[]string{"SET", "k", "v", "EX", "0"}, "-ERR invalid expire time in 'set' command"},
		{[]string{"SET", "k", "v", "PX", "-5"}, "-ERR invalid expire time in 'set' command"},
		{[]string{"SET", "k", "v", "EX", "1", "PX", "5"}, "-ERR syntax error"},
		{[]string{"GET", "k"}, `"v2"`}, // no failed SET wrote
		{[]string{"MSET", "m1", "a", "m2", "b", "m1", "c"}, "OK"},
		{[]string{"MGET", "m1", "m2"}, `["c" "b"]`},
		{[]string{"MSET", "m1", "a", "m2"}, "-ERR wrong number of arguments for 'mset' command"},
		{[]string{"MSET", "m1"}, "-ERR wrong number of arguments for 'mset' command"},
		{[]string{"MSET", "m3", "x", "", "y"}, "-ERR empty keys are not supported by whycache"},
		{[]string{"EXISTS", "m3"}, ":0"}, // all or nothing
		{[]string{"SETEX", "m1", "100", "d"}, "OK"},
		{[]string{"TTL", "m1"}, ":100"},
		{[]string{"GET", "m1"}, `"d"`},
		{[]string{"PSETEX", "m2", "100000", "e"}, "OK"},
		{[]string{"TTL", "m2"}, ":100"},
		{[]string{"SETEX", "m1", "0", "d"}, "-ERR invalid expire time in 'setex' command"},
		{[]string{"PSETEX", "m1", "-1", "d"}, "-ERR invalid expire time in 'psetex' command"},
		{[]string{"SETEX", "m1", "x", "d"}, "-ERR value is not an integer or out of range"},
		{[]string{"SETEX", "m1", "1"}, "-ERR wrong number of arguments for 'setex' command"},
		{[]string{"DEL", "m1", "m2"}, ":2"},
		{[]string{"INCR", "n"}, "-ERR incr is not supported: it would write a value computed from this machine's state, which another machine may already have replaced; a whycache write is an unconditional SET"},
		{[]string{"setnx", "n", "1"}, "-ERR setnx is not supported: it would write a value computed from this machine's state, which another machine may already have replaced; a whycache write is an unconditional SET"},
		{[]string{"INCRBY", "n"}, "-ERR wrong number of arguments for 'incrby' command"},
		{[]string{"MGET", "k", "missing", "bin"}, `["v2" (nil) "a\x00\r\nb"]`},
		{[]string{"MGET"}, "-ERR wrong number of arguments for 'mget' command"},
		{[]string{"EXISTS", "k", "k", "missing"}, ":2"},
		{[]string{"EXISTS"}, "-ERR wrong number of arguments for 'exists' command"},
		{[]string{"DBSIZE"}, ":2"},
		{[]string{"DBSIZE", "x"}, "-ERR wrong number of arguments for 'dbsize' command"},
		{[]string{"DEL", "k", "k", "missing", ""}, ":1"},
		{[]string{"GET", "k"}, "(nil)"},
		{[]string{"DEL", "k"}, ":0"},
		{[]string{"DEL"}, "-ERR wrong number of arguments for 'del' command"},
		{[]string{"UNLINK", "bin"}, ":1"},
		{[]string{"DBSIZE"}, ":0"},
		{[]string{"SELECT", "0"}, "OK"},
		{[]string{"SELECT", "1"}, "-ERR DB index is out of range"},
		{[]string{"SELECT", "x"}, "-ERR value is not an integer or out of range"},
		{[]string{"FLUSHALL"}, "-ERR unknown command 'FLUSHALL', with args beginning with: "},
		{[]string{"foo", "a", "b c"}, "-ERR unknown command 'foo', with args beginning with: 'a' 'b c' "},
		{[]string{"CLIENT", "GETNAME"}, "(nil)"},
		{[]string{"CLIENT", "SETNAME", "app-1"}, "OK"},
		{[]string{"CLIENT", "GETNAME"}, `"app-1"`},
		{[]string{"CLIENT", "SETNAME", "a b"}, "-ERR Client names cannot contain spaces, newlines or special characters."},
		{[]string{"CLIENT", "SETINFO", "LIB-NAME", "x"}, "OK"},
		{[]string{"CLIENT", "KILL", "x"}, "-ERR unknown subcommand 'KILL'. Try CLIENT HELP."},
		{[]string{"CLIENT"}, "-ERR wrong number of arguments for 'client' command"},
		{[]string{"HELLO", "3"}, "-NOPROTO unsupported protocol version"},
		{[]string{"HELLO", "x"}, "-ERR Protocol version is not an integer or out of range"},
		{[]string{"HELLO", "2", "SETNAME", "n2"}, `["server" "redis" "version" "7.0.0" "proto" :2 "id" :1 "mode" "standalone" "role" "master" "modules" []]`},
		{[]string{"CLIENT", "GETNAME"}, `"n2"`},
		{[]string{"HELLO", "2", "BOGUS"}, "-ERR Syntax error in HELLO option 'BOGUS'"},
		{[]string{"AUTH", "pw"}, "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{[]string{"COMMAND", "COUNT"}, ":36"},
		{[]string{"CONFIG", "GET", "save"}, `["save" ""]`},
		{[]string{"CONFIG", "GET", "SAVE", "appendonly", "nosuch"}, `["appendonly" "no" "save" ""]`},
		{[]string{"CONFIG", "GET", "*"}, `["appendonly" "no" "databases" "1" "save" ""]`},
		{[]string{"CONFIG", "GET"}, "-ERR wrong number of arguments for 'config|get' command"},
		{[]string{"CONFIG", "SET", "save", ""}, "-ERR CONFIG SET is not supported: whycache serve is configured by its command line"},
		{[]string{"COMMAND", "INFO", "get", "nosuch"}, `[["get" :2 [readonly fast] :1 :1 :1 [] [] [] []] (nil)]`},
		{[]string{"COMMAND", "DOCS"}, "[]"},
		{[]string{"COMMAND", "FOO"}, "-ERR unknown subcommand 'FOO'. Try COMMAND HELP."},
		{[]string{"PTTL"}, "-ERR wrong number of arguments for 'pttl' command"},
		{[]string{"KEYS"}, "-ERR wrong number of arguments for 'keys' command"},
		{[]string{"SCAN"}, "-ERR wrong number of arguments for 'scan' command"},
	}
	for _, tc := range cases {
		if got := rc.do(tc.args...); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
}

// TestCommandTableComplete checks that COMMAND lists every command of
// the table, so that clients that discover commands see them all.
func TestCommandTableComplete(t *testing.T) {
	addr, _ := startServer(t, "")
	rc := dialRaw(t, addr)
	got := rc.do("COMMAND")
	for name := range commandTable {
		if !strings.Contains(got, `["`+name+`" `) {
			t.Errorf("COMMAND does not list %s", name)
		}
	}
}

func TestInfo(t *testing.T) {
	addr, inst := startServer(t, "")
	rc := dialRaw(t, addr)
	rc.do("SET", "a", "1")
	rc.do("SET", "b", "2")
	all := rc.do("INFO")
	for _, want := range []string{"# Server", "redis_version:7.0.0", "# Clients", "connected_clients:1", "# Replication", "whycache_update_id:2", "whycache_follow:off", "# Keyspace", "db0:keys=2", inst.StatePath()} {
		if !strings.Contains(all, want) {
			t.Errorf("INFO lacks %q:\n%s", want, all)
		}
	}
	ks := rc.do("info", "KEYSPACE")
	if strings.Contains(ks, "# Server") || !strings.Contains(ks, "db0:keys=2") {
		t.Errorf("INFO keyspace: %s", ks)
	}
	if got := rc.do("INFO", "nosuch"); got != `""` {
		t.Errorf("INFO nosuch: %s", got)
	}
}

// TestQuitStopsPipeline checks that QUIT answers OK, closes the
// connection, and that commands pipelined after it are not run.
func TestQuitStopsPipeline(t *testing.T) {
	addr, inst := startServer(t, "")
	rc := dialRaw(t, addr)
	rc.send(encode("SET", "a", "1") + encode("QUIT") + encode("SET", "b", "2"))
	if got := rc.read(); got != "OK" {
		t.Fatalf("SET: %s", got)
	}
	if got := rc.read(); got != "OK" {
		t.Fatalf("QUIT: %s", got)
	}
	if _, err := readReply(rc.r); err == nil {
		t.Fatal("the connection stayed open after QUIT")
	}
	if _, err := inst.Get([]byte("b")); err == nil {
		t.Error("a SET pipelined after QUIT was run")
	}
}

// TestPipelinedSetsCommitTogether sends a pipeline in one write: the run
// of plain SETs commits as one record, a later SET of the same key wins,
// a GET after the run sees it, and a run with a bad item is done again one
// SET at a time so that only that SET fails.
func TestPipelinedSetsCommitTogether(t *testing.T) {
	addr, inst := startServer(t, "")
	rc := dialRaw(t, addr)
	before := inst.UpdateID()
	rc.send(encode("SET", "a", "1") + encode("SET", "b", "2") + encode("set", "a", "3") + encode("GET", "a") +
		encode("SET", "c", "4") + encode("SET", "", "x") + encode("SET", "d", "5"))
	want := []string{"OK", "OK", "OK", `"3"`, "OK", "-ERR empty keys are not supported by whycache", "OK"}
	for i, w := range want {
		if got := rc.read(); got != w {
			t.Errorf("reply %d: got %s, want %s", i, got, w)
		}
	}
	// One record for the first run, then c and d one at a time.
	if got := inst.UpdateID() - before; got != 3 {
		t.Errorf("the pipeline wrote %d records, want 3 (one for the run of three SETs)", got)
	}
	for k, v := range map[string]string{"a": "3", "b": "2", "c": "4", "d": "5"} {
		if got, err := inst.Get([]byte(k)); err != nil || string(got) != v {
			t.Errorf("%s = %q, %v; want %q", k, got, err, v)
		}
	}
}

// TestInvalidStateIsLoading checks the reply while the state was never
// filled: LOADING, which clients know as "try again later".
func TestInvalidStateIsLoading(t *testing.T) {
	addr, inst := startServer(t, "")
	if err := inst.DeleteSharedState(); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, addr)
	for _, args := range [][]string{{"GET", "a"}, {"MGET", "a"}, {"SCAN", "0"}, {"KEYS", "*"}, {"EXISTS", "a"}} {
		if got := rc.do(args...); !strings.HasPrefix(got, "-LOADING ") {
			t.Errorf("%q: %s, want LOADING", args, got)
		}
	}
}

// TestExpiry covers SET's expiry options, TTL and PTTL, and the refused
// commands that would rewrite a value read here.
func TestExpiry(t *testing.T) {
	addr, inst := startServer(t, "")
	rc := dialRaw(t, addr)
	past := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	future := time.Now().Add(time.Hour)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"TTL", "k"}, ":-2"},
		{[]string{"PTTL", "k"}, ":-2"},
		{[]string{"SET", "k", "v"}, "OK"},
		{[]string{"TTL", "k"}, ":-1"},
		{[]string{"PTTL", "k"}, ":-1"},
		{[]string{"SET", "k", "v", "EX", "100"}, "OK"},
		{[]string{"TTL", "k"}, ":100"},
		{[]string{"SET", "k", "v", "px", "1500"}, "OK"},
		{[]string{"PTTL", "k"}, "~1500"},
		{[]string{"TTL", "k"}, ":1"}, // (ms + 500) / 1000, as Redis rounds
		{[]string{"SET", "k", "v", "EXAT", strconv.FormatInt(future.Unix(), 10)}, "OK"},
		{[]string{"TTL", "k"}, "~3600"},
		{[]string{"SET", "k", "v", "PXAT", strconv.FormatInt(future.UnixMilli(), 10)}, "OK"},
		{[]string{"SET", "k", "v"}, "OK"}, // a plain SET drops the expiry
		{[]string{"TTL", "k"}, ":-1"},
		{[]string{"SET", "gone", "v", "EXAT", past}, "OK"}, // written, already expired
		{[]string{"GET", "gone"}, "(nil)"},
		{[]string{"EXISTS", "gone"}, ":0"},
		{[]string{"DBSIZE"}, ":2"}, // k, and gone until it is overwritten
		{[]string{"TTL", "gone"}, ":-2"},
		{[]string{"SET", "k", "v", "EX", "99999999999999999"}, "-ERR invalid expire time: whycache: invalid expiry: expiry *"},
		{[]string{"SET", "k", "v", "KEEPTTL"}, "-ERR SET KEEPTTL is not supported: the expiry read here may already be replaced on another machine"},
		{[]string{"SET", "k", "v", "EX", "5", "KEEPTTL"}, "-ERR syntax error"},
		{[]string{"EXPIRE", "k", "10"}, "-ERR expire is not supported: it would write back a value read from this machine's state over newer writes elsewhere; give the expiry with SET key value EX seconds"},
		{[]string{"PERSIST", "k"}, "-ERR persist is not supported: it would write back a value read from this machine's state over newer writes elsewhere; give the expiry with SET key value EX seconds"},
		{[]string{"EXPIRE", "k"}, "-ERR wrong number of arguments for 'expire' command"},
	}
	for _, tc := range cases {
		if got := rc.do(tc.args...); !replyLike(got, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
	// An item that expires while the client watches it.
	if got := rc.do("SET", "short", "v", "PX", "200"); got != "OK" {
		t.Fatal(got)
	}
	if got := rc.do("PTTL", "short"); got == ":-1" || got == ":-2" {
		t.Errorf("PTTL of a fresh 200 ms item: %s", got)
	}
	if _, at, err := inst.GetWithExpiry([]byte("short")); err != nil || time.Until(at) > 200*time.Millisecond {
		t.Errorf("the instance sees expiry %v, %v", at, err)
	}
	time.Sleep(300 * time.Millisecond)
	for _, args := range [][]string{{"GET", "short"}, {"PTTL", "short"}, {"MGET", "short"}} {
		want := map[string]string{"GET": "(nil)", "PTTL": ":-2", "MGET": "[(nil)]"}[args[0]]
		if got := rc.do(args...); got != want {
			t.Errorf("%q after the expiry: %s, want %s", args, got, want)
		}
	}
}

// replyLike compares a rendered reply with want, where "~N" is an
// integer reply from N-10 to N (time has passed since the write) and a
// trailing "*" matches any rest.
func replyLike(got, want string) bool {
	if n, ok := strings.CutPrefix(want, "~"); ok {
		w, err1 := strconv.Atoi(n)
		g, err2 := strconv.Atoi(strings.TrimPrefix(got, ":"))
		return err1 == nil && err2 == nil && strings.HasPrefix(got, ":") && w-10 <= g && g <= w
	}
	if p, ok := strings.CutSuffix(want, "*"); ok {
		return strings.HasPrefix(got, p)
	}
	return got == want
}

// TestDelOneCommit checks that DEL of several keys is one log record: the
// keys disappear together for every reader.
func TestDelOneCommit(t *testing.T) { // and MSET
	addr, inst := startServer(t, "")
	rc := dialRaw(t, addr)
	for _, k := range []string{"a", "b", "c"} {
		rc.do("SET", k, "v")
	}
	before := inst.UpdateID()
	if got := rc.do("DEL", "a", "b", "c", "missing"); got != ":3" {
		t.Fatalf("DEL: %s", got)
	}
	if got := inst.UpdateID() - before; got != 1 {
		t.Errorf("DEL of 4 keys wrote %d records, want 1", got)
	}
	// MSET too: its pairs in one commit, as Redis sets them atomically.
	before = inst.UpdateID()
	if got := rc.do("MSET", "a", "1", "b", "2", "c", "3"); got != "OK" {
		t.Fatalf("MSET: %s", got)
	}
	if got := inst.UpdateID() - before; got != 1 {
		t.Errorf("MSET of 3 pairs wrote %d records, want 1", got)
	}
}
