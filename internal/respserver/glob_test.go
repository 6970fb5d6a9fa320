package respserver

import "testing"

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "abc", true},
		{"", "", true},
		{"", "a", false},
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*c", "abc", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[a-b]llo", "hcllo", false},
		{"h[b-a]llo", "hallo", true}, // Redis swaps a reversed range
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{`h[\]]llo`, "h]llo", true},
		{"user:*:name", "user:42:name", true},
		{"user:*:name", "user:42:mail", false},
		{"**a", "bba", true},
		{"[", "a", false},
		{"ab[", "ab", false},
	}
	for _, tc := range cases {
		if got := globMatch([]byte(tc.pattern), []byte(tc.s)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestGlobPrefix(t *testing.T) {
	cases := []struct {
		pattern, prefix string
		all             bool
	}{
		{"abc*", "abc", true},
		{"abc**", "abc", true},
		{"*", "", true},
		{"abc*d", "abc", false},
		{"ab?c", "ab", false},
		{"ab[cd]*", "ab", false},
		{`a\*b*`, "a*b", true},
		{"abc", "abc", false},
	}
	for _, tc := range cases {
		p, all := globPrefix([]byte(tc.pattern))
		if string(p) != tc.prefix || all != tc.all {
			t.Errorf("globPrefix(%q) = %q, %v; want %q, %v", tc.pattern, p, all, tc.prefix, tc.all)
		}
	}
}

// FuzzGlobMatch checks that every key with a pattern's literal prefix is
// the only kind of key that can match it (what SCAN's prefix scan relies
// on), and that matching never panics.
func FuzzGlobMatch(f *testing.F) {
	f.Add([]byte("a*b?[c-d]"), []byte("axbycd"))
	f.Add([]byte(`\[x*`), []byte("[xyz"))
	f.Fuzz(func(t *testing.T, pattern, s []byte) {
		m := globMatch(pattern, s)
		prefix, all := globPrefix(pattern)
		if m && string(s[:min(len(prefix), len(s))]) != string(prefix) {
			t.Fatalf("%q matches %q but lacks its prefix %q", pattern, s, prefix)
		}
		if all && len(s) >= len(prefix) && string(s[:len(prefix)]) == string(prefix) && !m {
			t.Fatalf("%q: every key with prefix %q should match, %q does not", pattern, prefix, s)
		}
	})
}
