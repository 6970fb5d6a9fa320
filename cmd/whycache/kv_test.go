package main

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyValueCommands(t *testing.T) {
	forEachStore(t, func(t *testing.T, c *cli) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.state")

		// A state never filled refuses reads with advice.
		line := c.fails(1, "--state", a, "get", "k")
		if !strings.Contains(line, "whycache update") {
			t.Errorf("get on an unfilled state: %q does not tell to run whycache update", line)
		}
		var up map[string]any
		c.okJSON(&up, "--state", a, "update")
		if _, ok := up["update_id"]; !ok {
			t.Errorf("update --json = %v, want an update_id", up)
		}

		if out := c.ok("--state", a, "set", "fruit:apple", "red"); !strings.Contains(out, "committed as log record") {
			t.Errorf("set printed %q", out)
		}
		var id struct{ ID uint64 }
		c.okJSON(&id, "--state", a, "set", "fruit:banana", "yellow")
		if id.ID == 0 {
			t.Error("set --json: id 0")
		}
		binary := []byte{0xff, 0x00, 'x', '\n'}
		c.okIn(binary, "--state", a, "set", "--stdin", "blob")
		c.ok("--state", a, "set", "empty", "")
		c.ok("--state", a, "set", "--", "neg", "-1")

		// get: raw bytes, JSON with text or base64.
		for _, tt := range []struct{ key, want string }{
			{"fruit:apple", "red"}, {"blob", string(binary)}, {"empty", ""}, {"neg", "-1"},
		} {
			if got := c.ok("--state", a, "get", tt.key); got != tt.want {
				t.Errorf("get %s = %q, want %q", tt.key, got, tt.want)
			}
		}
		var item struct {
			Key      string
			Value    *string
			ValueB64 *string `json:"value_b64"`
		}
		c.okJSON(&item, "--state", a, "get", "blob")
		if item.Value != nil || item.ValueB64 == nil {
			t.Fatalf("get --json blob: %+v, want value_b64 only", item)
		}
		if dec, err := base64.StdEncoding.DecodeString(*item.ValueB64); err != nil || string(dec) != string(binary) {
			t.Errorf("get --json blob: value_b64 %q decodes to %q (%v)", *item.ValueB64, dec, err)
		}
		item.Value, item.ValueB64 = nil, nil
		c.okJSON(&item, "--state", a, "get", "fruit:apple")
		if item.Key != "fruit:apple" || item.Value == nil || *item.Value != "red" {
			t.Errorf("get --json fruit:apple: %+v", item)
		}
		line = c.fails(3, "--state", a, "get", "missing")
		if !strings.Contains(line, "not found") {
			t.Errorf("get missing: %q", line)
		}

		// ls in its forms.
		if got, want := c.ok("--state", a, "ls"), "blob\nempty\nfruit:apple\nfruit:banana\nneg\n"; got != want {
			t.Errorf("ls = %q, want %q", got, want)
		}
		if got, want := c.ok("--state", a, "ls", "--prefix", "fruit:", "--values"), "fruit:apple\tred\nfruit:banana\tyellow\n"; got != want {
			t.Errorf("ls --prefix fruit: --values = %q, want %q", got, want)
		}
		if got, want := c.ok("--state", a, "ls", "--limit", "2"), "blob\nempty\n"; got != want {
			t.Errorf("ls --limit 2 = %q, want %q", got, want)
		}
		if got, want := c.ok("--state", a, "ls", "--values", "--prefix", "blob"), "blob\t\"\\xff\\x00x\\n\"\n"; got != want {
			t.Errorf("ls of a binary value = %q, want %q", got, want)
		}
		l := c.content(a)
		if len(l) != 5 || l[2].Key != "fruit:apple" || l[2].Value == nil || *l[2].Value != "red" || l[0].ValueB64 == nil {
			t.Errorf("ls --values --json = %+v", l)
		}
		var keysOnly []map[string]any
		c.okJSON(&keysOnly, "--state", a, "ls", "--prefix", "nothing-has-this")
		if len(keysOnly) != 0 {
			t.Errorf("ls of an absent prefix = %v", keysOnly)
		}

		// del, then a second machine converges with update.
		c.ok("--state", a, "del", "fruit:banana", "neg", "never-existed")
		c.fails(3, "--state", a, "get", "fruit:banana")
		b := filepath.Join(dir, "b.state")
		c.ok("--state", b, "update")
		c.sameContent(a, b)

		// stats and verify.
		var st struct {
			Valid      bool
			Keys       uint64
			UpdateID   uint64 `json:"update_id"`
			LatestID   uint64 `json:"latest_id"`
			LagRecords uint64 `json:"lag_records"`
			DataBytes  uint64 `json:"data_bytes"`
			FileBytes  int64  `json:"state_file_bytes"`
			StatePath  string `json:"state_path"`
		}
		c.okJSON(&st, "--state", b, "stats")
		if !st.Valid || st.Keys != 3 || st.UpdateID == 0 || st.UpdateID != st.LatestID || st.LagRecords != 0 || st.FileBytes <= 0 || st.StatePath != b {
			t.Errorf("stats --json of the updated state: %+v", st)
		}
		wantData := uint64(len("blob") + len(binary) + len("empty") + len("fruit:apple") + len("red"))
		if st.DataBytes != wantData {
			t.Errorf("stats: data_bytes %d, want %d", st.DataBytes, wantData)
		}
		c.ok("--state", a, "set", "later", "1")
		c.okJSON(&st, "--state", b, "stats")
		if st.LagRecords != 1 || st.LatestID != st.UpdateID+1 {
			t.Errorf("stats of a state one record behind: %+v", st)
		}
		if out := c.ok("--state", b, "stats"); !strings.Contains(out, "lag") || !strings.Contains(out, "1 records") {
			t.Errorf("stats text lacks the lag:\n%s", out)
		}
		var v struct {
			OK   bool
			Keys uint64
		}
		c.okJSON(&v, "--state", a, "verify")
		if !v.OK || v.Keys != 4 {
			t.Errorf("verify --json: %+v", v)
		}
	})
}
