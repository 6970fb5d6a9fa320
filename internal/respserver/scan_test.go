package respserver

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whycache/whycache"
)

// fill writes n keys named fmt.Sprintf(format, i).
func fill(t *testing.T, inst *whycache.Instance, format string, n int) []string {
	t.Helper()
	items := make([]whycache.Item, n)
	keys := make([]string, n)
	for i := range items {
		keys[i] = fmt.Sprintf(format, i)
		items[i] = whycache.Item{Key: []byte(keys[i]), Value: []byte("v")}
	}
	if _, err := inst.SetMulti(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	return keys
}

// scanAll runs SCAN to the end with the given options and returns the
// keys in the order they came.
func scanAll(t *testing.T, rc *rawConn, opts ...string) []string {
	t.Helper()
	var keys []string
	cursor := "0"
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("SCAN does not end")
		}
		got := rc.do(append([]string{"SCAN", cursor}, opts...)...)
		next, page := parseScanReply(t, got)
		keys = append(keys, page...)
		if next == "0" {
			return keys
		}
		cursor = next
	}
}

// parseScanReply splits a rendered SCAN reply into cursor and keys.
func parseScanReply(t *testing.T, got string) (string, []string) {
	t.Helper()
	if !strings.HasPrefix(got, `["`) {
		t.Fatalf("SCAN reply %s", got)
	}
	body := strings.TrimSuffix(strings.TrimPrefix(got, "["), "]")
	cur, rest, _ := strings.Cut(body, " ")
	cursor, err := strconv.Unquote(cur)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.ParseInt(cursor, 10, 64); err != nil {
		t.Errorf("cursor %s does not parse as a signed 64-bit integer", cursor)
	}
	rest = strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
	var keys []string
	for _, f := range strings.Fields(rest) {
		k, err := strconv.Unquote(f)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return cursor, keys
}

func TestScan(t *testing.T) {
	addr, inst := startServer(t, "")
	all := fill(t, inst, "k%03d", 100)
	all = append(all, fill(t, inst, "other%d", 5)...)
	slices.Sort(all)
	rc := dialRaw(t, addr)
	var k01, k05 []string
	for _, k := range all {
		if strings.HasPrefix(k, "k01") || strings.HasPrefix(k, "k02") {
			k01 = append(k01, k)
		}
		if strings.HasPrefix(k, "k05") {
			k05 = append(k05, k)
		}
	}
	cases := []struct {
		name string
		opts []string
		want []string
	}{
		{"all, default count", nil, all},
		{"all, count 7", []string{"COUNT", "7"}, all},
		{"all, count above size", []string{"count", "1000"}, all},
		{"prefix", []string{"MATCH", "k05*", "COUNT", "3"}, k05},
		{"class", []string{"MATCH", "k0[1-2]*", "COUNT", "9"}, k01},
		{"exact key", []string{"MATCH", "other3"}, []string{"other3"}},
		{"no match", []string{"MATCH", "zzz*"}, nil},
		{"type string", []string{"TYPE", "string", "COUNT", "50"}, all},
		{"type hash", []string{"TYPE", "hash"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := scanAll(t, rc, tc.opts...); !slices.Equal(got, tc.want) {
				t.Errorf("got %d keys %q, want %d %q", len(got), got, len(tc.want), tc.want)
			}
		})
	}
	// A page never holds more than COUNT keys.
	if _, page := parseScanReply(t, rc.do("SCAN", "0", "COUNT", "4")); len(page) != 4 {
		t.Errorf("SCAN 0 COUNT 4 returned %d keys", len(page))
	}
	// MATCH with a literal prefix examines only keys with that prefix: the
	// first page of COUNT 10 holds the 10 matching keys, where filtering
	// all keys in order would find none among the first 10.
	if _, page := parseScanReply(t, rc.do("SCAN", "0", "MATCH", "k05*", "COUNT", "10")); !slices.Equal(page, k05) {
		t.Errorf("SCAN 0 MATCH k05* COUNT 10: %q, want %q", page, k05)
	}
	if got := rc.do("KEYS", "k05*"); got != `["`+strings.Join(k05, `" "`)+`"]` {
		t.Errorf("KEYS k05*: %s", got)
	}
	if got := rc.do("KEYS", "*"); strings.Count(got, `"`) != 2*len(all) {
		t.Errorf("KEYS *: %s", got)
	}
}

func TestScanErrors(t *testing.T) {
	addr, inst := startServer(t, "")
	fill(t, inst, "k%02d", 30)
	rc := dialRaw(t, addr)
	cursor, _ := parseScanReply(t, rc.do("SCAN", "0"))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"SCAN", "abc"}, "-ERR invalid cursor"},
		{[]string{"SCAN", "-1"}, "-ERR invalid cursor"},
		{[]string{"SCAN", "12345"}, "-ERR invalid cursor: 12345 is unknown, already used or older than 10m0s; start again from 0"},
		{[]string{"SCAN", "0", "COUNT"}, "-ERR syntax error"},
		{[]string{"SCAN", "0", "COUNT", "0"}, "-ERR syntax error"},
		{[]string{"SCAN", "0", "COUNT", "x"}, "-ERR value is not an integer or out of range"},
		{[]string{"SCAN", "0", "FOO", "x"}, "-ERR syntax error"},
	}
	for _, tc := range cases {
		if got := rc.do(tc.args...); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.args, got, tc.want)
		}
	}
	// A cursor continues once, on any connection; then it is used up.
	other := dialRaw(t, addr)
	if got := other.do("SCAN", cursor); !strings.HasPrefix(got, `["`) {
		t.Errorf("SCAN %s on another connection: %s", cursor, got)
	}
	if got := rc.do("SCAN", cursor); !strings.HasPrefix(got, "-ERR invalid cursor: ") {
		t.Errorf("SCAN %s again: %s", cursor, got)
	}
}

// TestScanConcurrentChanges changes the keys between the pages of a scan:
// every key present and unchanged for the whole scan is returned, none
// twice, keys added ahead of the cursor appear and deleted ones do not
// come back.
func TestScanConcurrentChanges(t *testing.T) {
	addr, inst := startServer(t, "")
	fill(t, inst, "k%03d", 200)
	rc := dialRaw(t, addr)
	ctx := context.Background()
	seen := map[string]int{}
	cursor := "0"
	for page := 0; ; page++ {
		next, keys := parseScanReply(t, rc.do("SCAN", cursor, "COUNT", "10"))
		for _, k := range keys {
			seen[k]++
		}
		// Behind and ahead of the cursor: delete k000+page, add kNNNa ahead,
		// and delete the last key of this page and write it again.
		inst.Delete(ctx, []byte(fmt.Sprintf("k%03d", page)))
		inst.Set(ctx, []byte(fmt.Sprintf("k%03da", 199-page)), []byte("new"))
		if len(keys) > 0 {
			inst.Set(ctx, []byte(keys[len(keys)-1]), []byte("again"))
		}
		if next == "0" {
			break
		}
		cursor = next
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s returned %d times", k, n)
		}
	}
	for i := 0; i < 200; i++ {
		if k := fmt.Sprintf("k%03d", i); seen[k] == 0 {
			t.Errorf("%s, present for the whole scan, was not returned", k)
		}
	}
	added := 0
	for k := range seen {
		if strings.HasSuffix(k, "a") {
			added++
		}
	}
	if added == 0 {
		t.Error("no key added ahead of the cursor was returned")
	}
}

func TestCursorTableBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := newCursorTable(3, time.Minute)
	ids := make([]uint64, 4)
	for i := range ids {
		ids[i] = tab.put([]byte{byte(i)}, now.Add(time.Duration(i)*time.Second))
		if ids[i] == 0 || ids[i] > 1<<63-1 {
			t.Fatalf("cursor %d out of range", ids[i])
		}
	}
	if _, ok := tab.take(ids[0], now); ok {
		t.Error("the oldest cursor survived a full table")
	}
	if last, ok := tab.take(ids[3], now.Add(4*time.Second)); !ok || last[0] != 3 {
		t.Errorf("take newest: %v, %v", last, ok)
	}
	if _, ok := tab.take(ids[3], now); ok {
		t.Error("a cursor was taken twice")
	}
	if _, ok := tab.take(ids[1], now.Add(2*time.Minute)); ok {
		t.Error("an expired cursor was taken")
	}
}
