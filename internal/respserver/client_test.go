package respserver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/whycache/whycache/internal/redistest"
)

// TestGoRedisClient drives the server with go-redis as an application
// would, in its default mode (it asks for RESP3 with HELLO 3, is refused,
// and goes on in RESP2).
func TestGoRedisClient(t *testing.T) {
	addr, _ := startServer(t, "")
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ClientName: "test"})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "user:1", "ann", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.MSet(ctx, "x", "y", "user:5", "z").Err(); err != nil {
		t.Errorf("MSET: %v", err)
	}
	if n, err := rdb.Del(ctx, "x", "user:5").Result(); err != nil || n != 2 {
		t.Errorf("DEL of MSET's keys: %d, %v", n, err)
	}
	if err := rdb.SetEx(ctx, "tmp", "t", time.Minute).Err(); err != nil {
		t.Errorf("SETEX: %v", err)
	}
	if d, err := rdb.TTL(ctx, "tmp").Result(); err != nil || d != time.Minute {
		t.Errorf("TTL after SETEX: %v, %v", d, err)
	}
	if n, err := rdb.Del(ctx, "tmp").Result(); err != nil || n != 1 {
		t.Errorf("DEL of SETEX's key: %d, %v", n, err)
	}
	if v, err := rdb.Get(ctx, "user:1").Result(); err != nil || v != "ann" {
		t.Errorf("GET: %q, %v", v, err)
	}
	if _, err := rdb.Get(ctx, "nope").Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET missing: %v", err)
	}
	pipe := rdb.Pipeline()
	for _, k := range []string{"user:2", "user:3", "user:4"} {
		pipe.Set(ctx, k, "v-"+k, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if vs, err := rdb.MGet(ctx, "user:2", "nope", "user:4").Result(); err != nil || vs[0] != "v-user:2" || vs[1] != nil || vs[2] != "v-user:4" {
		t.Errorf("MGET: %v, %v", vs, err)
	}
	if n, err := rdb.Exists(ctx, "user:1", "nope").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS: %d, %v", n, err)
	}
	var keys []string
	iter := rdb.Scan(ctx, 0, "user:*", 2).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil || !slices.Equal(keys, []string{"user:1", "user:2", "user:3", "user:4"}) {
		t.Errorf("SCAN iterator: %q, %v", keys, err)
	}
	if n, err := rdb.Del(ctx, "user:1", "user:2", "nope").Result(); err != nil || n != 2 {
		t.Errorf("DEL: %d, %v", n, err)
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 2 {
		t.Errorf("DBSIZE: %d, %v", n, err)
	}
	if s, err := rdb.Info(ctx, "keyspace").Result(); err != nil || !strings.Contains(s, "db0:keys=2") {
		t.Errorf("INFO: %q, %v", s, err)
	}
	if n, err := rdb.ClientGetName(ctx).Result(); err != nil || n != "test" {
		t.Errorf("CLIENT GETNAME: %q, %v", n, err)
	}
}

// TestRequirePass checks that with a password only AUTH, HELLO, PING and
// QUIT run before authentication, with Redis's errors, and that go-redis
// authenticates through HELLO or AUTH.
func TestRequirePass(t *testing.T) {
	addr, _ := startServer(t, "s3cret")
	rc := dialRaw(t, addr)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"GET", "a"}, "-NOAUTH Authentication required."},
		{[]string{"SET", "a", "1"}, "-NOAUTH Authentication required."},
		{[]string{"NOSUCH"}, "-NOAUTH Authentication required."},
		{[]string{"SCAN", "0"}, "-NOAUTH Authentication required."},
		{[]string{"PING"}, "PONG"},
		{[]string{"HELLO", "2"}, "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"},
		{[]string{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"AUTH", "other", "s3cret"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"HELLO", "2", "AUTH", "default", "nope"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"GET", "a"}, "-NOAUTH Authentication required."},
		{[]string{"AUTH", "s3cret"}, "OK"},
		{[]string{"SET", "a", "1"}, "OK"},
		{[]string{"GET", "a"}, `"1"`},
	}
	for _, tc := range cases {
		if got := rc.do(tc.args...); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
	// Pipelined SETs before AUTH are refused one by one, not batched.
	rc2 := dialRaw(t, addr)
	rc2.send(encode("SET", "b", "1") + encode("SET", "c", "2") + encode("AUTH", "default", "s3cret") + encode("SET", "d", "3") + encode("SET", "e", "4") + encode("MGET", "b", "d", "e"))
	for i, w := range []string{"-NOAUTH Authentication required.", "-NOAUTH Authentication required.", "OK", "OK", "OK", `[(nil) "3" "4"]`} {
		if got := rc2.read(); got != w {
			t.Errorf("pipeline reply %d: %s, want %s", i, got, w)
		}
	}

	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		good := redis.NewClient(&redis.Options{Addr: addr, Password: "s3cret", Protocol: proto})
		if v, err := good.Get(ctx, "a").Result(); err != nil || v != "1" {
			t.Errorf("go-redis protocol %d with the password: %q, %v", proto, v, err)
		}
		good.Close()
	}
	bad := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer bad.Close()
	if err := bad.Get(ctx, "a").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("go-redis without the password: %v", err)
	}
}

// TestGlobLikeRedis runs KEYS with the same patterns on a redis-server
// and on the server, over the same keys: the glob semantics are Redis's.
func TestGlobLikeRedis(t *testing.T) {
	ours, _ := startServer(t, "")
	theirs := redistest.Start(t)
	ctx := context.Background()
	keys := []string{"hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo", "h]llo", "user:1:name", "user:22:mail", "a[b", `a\b`, "abc", "ab", "b"}
	var results [2][]string
	patterns := []string{"*", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", `h\*llo`, `h[\]]llo`, "user:*:name", "user:?:*", "a[[]b", `a\\b`, "ab*", "a*", "[a-b]*", "*o", "?", "ab[", "[^a]*"}
	for i, addr := range []string{ours, theirs} {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		for _, k := range keys {
			if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range patterns {
			got, err := rdb.Keys(ctx, p).Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			results[i] = append(results[i], p+" -> "+strings.Join(got, ","))
		}
	}
	for i := range patterns {
		if results[0][i] != results[1][i] {
			t.Errorf("whycache: %s\n    redis: %s", results[0][i], results[1][i])
		}
	}
}

// TestUnauthenticatedInputBounded checks that a client without the
// password cannot make the server read more than maxUnauthBytes, while an
// authenticated one sends large values.
func TestUnauthenticatedInputBounded(t *testing.T) {
	addr, _ := startServer(t, "pw")
	big := strings.Repeat("x", 2*maxUnauthBytes)
	rc := dialRaw(t, addr)
	rc.send(encode("SET", "k", big))
	if got, err := readReply(rc.r); err == nil {
		t.Fatalf("the server answered %.80s instead of closing the connection", got)
	}
	rc = dialRaw(t, addr)
	if got := rc.do("AUTH", "pw"); got != "OK" {
		t.Fatal(got)
	}
	if got := rc.do("SET", "k", big); got != "OK" {
		t.Fatalf("SET of a large value after AUTH: %.80s", got)
	}
	if got := rc.do("GET", "k"); len(got) != len(big)+2 {
		t.Errorf("GET returned %d bytes", len(got))
	}
}
