package main

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		json    bool
		limit   int
		wantErr bool
	}{
		{[]string{"k"}, []string{"k"}, false, 0, false},
		{[]string{"k", "--json"}, []string{"k"}, true, 0, false},
		{[]string{"--limit", "3", "a", "--json", "b"}, []string{"a", "b"}, true, 3, false},
		{[]string{"a", "--", "--json", "-1"}, []string{"a", "--json", "-1"}, false, 0, false},
		{[]string{"-", "--json"}, []string{"-"}, true, 0, false},
		{[]string{"a", "-1"}, nil, false, 0, true},
		{[]string{"--nope"}, nil, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := newFlagSet("t")
			j := fs.Bool("json", false, "")
			l := fs.Int("limit", 0, "")
			pos, err := parseInterspersed(fs, tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !slices.Equal(pos, tt.pos) || *j != tt.json || *l != tt.limit {
				t.Errorf("got %q json=%v limit=%d, want %q json=%v limit=%d", pos, *j, *l, tt.pos, tt.json, tt.limit)
			}
		})
	}
}

func TestParseStore(t *testing.T) {
	tests := []struct {
		in, kind, arg, desc string
		code                int // exit code of the error; 0 for none
	}{
		{"file:/var/log/wc", storeFile, "/var/log/wc", "file:/var/log/wc", 0},
		{"file:rel/dir", storeFile, "rel/dir", "file:rel/dir", 0},
		{"mysql:u:pw@tcp(h:3306)/db", storeMySQL, "u:pw@tcp(h:3306)/db", "mysql:u:xxxxx@tcp(h:3306)/db", 0},
		{"mysql:u@unix(/run/mysqld/mysqld.sock)/db", storeMySQL, "u@unix(/run/mysqld/mysqld.sock)/db", "mysql:u@unix(/run/mysqld/mysqld.sock)/db", 0},
		{"", "", "", "", exitUsage},
		{"file:", "", "", "", exitUsage},
		{"/var/log/wc", "", "", "", exitUsage},
		{"postgres:x", "", "", "", exitUsage},
		{"mysql:u:pw@tcp(h:3306", "", "", "", exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := parseStore(tt.in)
			if tt.code != 0 {
				var ee *exitError
				if !errors.As(err, &ee) || ee.code != tt.code {
					t.Fatalf("err = %v, want exit code %d", err, tt.code)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil || s.kind != tt.kind || s.arg != tt.arg || s.String() != tt.desc {
				t.Errorf("= %+v %q, %v; want %s %q %q", s, s, err, tt.kind, tt.arg, tt.desc)
			}
		})
	}
}

func TestGlobalsResolve(t *testing.T) {
	env := map[string]string{"WHYCACHE_STORE": "file:/e", "WHYCACHE_TABLE": "t_env", "WHYCACHE_STATE": "/e.state"}
	getenv := func(k string) string { return env[k] }
	pyEnv := func(k string) string {
		if k == "WHYCACHE_FORMAT" {
			return formatPython
		}
		return env[k]
	}
	tests := []struct {
		name string
		in   globals
		want globals
		err  bool
	}{
		{"environment fills", globals{}, globals{store: "file:/e", table: "t_env", format: formatGo, state: "/e.state", progress: progressAuto}, false},
		{"flags win", globals{store: "file:/f", table: "t", state: "/f"}, globals{store: "file:/f", table: "t", format: formatGo, state: "/f", progress: progressAuto}, false},
		{"name hides WHYCACHE_STATE", globals{name: "n"}, globals{store: "file:/e", table: "t_env", format: formatGo, name: "n", progress: progressAuto}, false},
		{"python format from the environment, on a file store", globals{}, globals{}, true},
		{"python format on a MySQL store", globals{store: "mysql:u@tcp(h)/d", format: formatPython}, globals{store: "mysql:u@tcp(h)/d", table: "t_env", format: formatPython, state: "/e.state", progress: progressAuto}, false},
		{"bad format", globals{store: "mysql:u@tcp(h)/d", format: "py"}, globals{}, true},
		{"state and name", globals{name: "n", state: "/s"}, globals{}, true},
		{"bad progress", globals{progress: "x"}, globals{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.in
			get := getenv
			if strings.HasPrefix(tt.name, "python format from the environment") {
				get = pyEnv
			}
			err := g.resolve(get)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && g != tt.want {
				t.Errorf("= %+v, want %+v", g, tt.want)
			}
		})
	}
	var g globals
	if err := g.resolve(func(string) string { return "" }); err != nil || g.table != defaultTable {
		t.Errorf("default table: %+v, %v", g, err)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain key", "plain key"},
		{"ünïcode", "ünïcode"},
		{"tab\there", `"tab\there"`},
		{"line\n", `"line\n"`},
		{"\xff\x00", `"\xff\x00"`},
		{`"quoted"`, `"\"quoted\""`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := printable([]byte(tt.in)); got != tt.want {
			t.Errorf("printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestJSONItem(t *testing.T) {
	it := newJSONItem([]byte("k"), []byte{0xff}, true)
	if it.Key == nil || *it.Key != "k" || it.KeyB64 != nil || it.Value != nil || it.ValueB64 == nil || *it.ValueB64 != "/w==" {
		t.Errorf("newJSONItem(k, ff) = %+v", it)
	}
	it = newJSONItem([]byte{0xfe}, []byte("v"), false)
	if it.Key != nil || it.KeyB64 == nil || *it.KeyB64 != "/g==" || it.Value != nil || it.ValueB64 != nil {
		t.Errorf("newJSONItem(fe) without value = %+v", it)
	}
}

func TestOneLine(t *testing.T) {
	err := wrap(errors.Join(errors.New("whycache: read log: a"), errors.New("b")), "update")
	if got, want := oneLine(err), "update: read log: a; b"; got != want {
		t.Errorf("oneLine = %q, want %q", got, want)
	}
	if got, want := oneLine(errors.New("whycache: key not found")), "key not found"; got != want {
		t.Errorf("oneLine = %q, want %q", got, want)
	}
}

func TestRenderProgress(t *testing.T) {
	tests := []struct {
		label       string
		done, total int64
		bytes       bool
		elapsed     time.Duration
		want        string
	}{
		{"export", 0, 2048, true, 0, "export [--------------------]   0%  0 B / 2.0 KiB"},
		{"export", 1024, 2048, true, time.Second, "export [##########----------]  50%  1.0 KiB / 2.0 KiB  1.0 KiB/s  eta 1s"},
		{"update", 30, 30, false, 3 * time.Second, "update [####################] 100%  30 / 30  10/s"},
		{"update", 40, 30, false, time.Second, "update [####################] 100%  40 / 30  40/s"},
		{"import", 5 << 20, 0, true, time.Second, "import  5.0 MiB  5.0 MiB/s"},
	}
	for _, tt := range tests {
		if got := renderProgress(tt.label, tt.done, tt.total, tt.bytes, tt.elapsed); got != tt.want {
			t.Errorf("renderProgress(%q, %d, %d) =\n%q, want\n%q", tt.label, tt.done, tt.total, got, tt.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{1 << 20, "1.0 MiB"}, {3 << 30, "3.0 GiB"}, {1 << 62, "4.0 EiB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestProgressOnlyWhenAsked(t *testing.T) {
	dir := t.TempDir()
	c := fileCLI(t)
	state := filledState(c, dir, 5)
	snap := filepath.Join(dir, "snap")
	c.ok("--state", state, "snapshot", "export", "--out", snap)
	for _, mode := range []string{"on", "off", "auto"} {
		for _, tt := range []struct {
			label string
			args  []string
		}{
			{"export", []string{"snapshot", "export", "--out", filepath.Join(dir, "out-"+mode)}},
			{"import", []string{"--state", filepath.Join(dir, "imported-"+mode), "snapshot", "import", snap}},
			{"update", []string{"--state", filepath.Join(dir, "fresh-"+mode), "update"}},
		} {
			args := append([]string{"--progress", mode, "--state", state}, tt.args...)
			r := runIn(t, nil, c.args(args)...)
			if r.code != 0 {
				t.Fatalf("%s: exit %d: %s", tt.label, r.code, r.stderr)
			}
			want := mode == "on" // stderr is not a terminal here: auto draws nothing
			if got := strings.Contains(r.stderr, "\r"+tt.label+" ["); got != want {
				t.Errorf("%s --progress %s: progress drawn %v, want %v; stderr %q", tt.label, mode, got, want, r.stderr)
			}
			if !want && r.stderr != "" {
				t.Errorf("%s --progress %s: stderr %q, want nothing", tt.label, mode, r.stderr)
			}
		}
	}
}
