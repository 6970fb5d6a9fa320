package whycache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	ogórek "github.com/kisielk/og-rek"
)

// pickleWrite makes TestPickleEncodePythonReads write testdata/pickle/go/
// for `python3 testdata/pickle/make_pickles.py check` to verify.
var pickleWrite = flag.Bool("pickle.write", false, "write testdata/pickle/go/ for make_pickles.py check")

// pkBig parses a decimal integer for test tables.
func pkBig(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic("bad test integer " + s)
	}
	return n
}

// pkPow returns b**e.
func pkPow(b, e int64) *big.Int { return new(big.Int).Exp(big.NewInt(b), big.NewInt(e), nil) }

// pkSum returns a+b.
func pkSum(a *big.Int, b int64) *big.Int { return new(big.Int).Add(a, big.NewInt(b)) }

// pkRange returns []any{int64(0) ... int64(n-1)}.
func pkRange(n int) []any {
	l := make([]any, n)
	for i := range l {
		l[i] = int64(i)
	}
	return l
}

// pickleCase is the Go side of one case of testdata/pickle/make_pickles.py:
// the natural value PickleCodec[any] decodes the Python pickle into, and the
// Python expression that Encode of that value must load as in Python when
// it is not the case's own (tuples come back as lists).
type pickleCase struct {
	want any
	back string
}

// pickleCases holds every case of make_pickles.py's CASES by name.
var pickleCases = map[string]pickleCase{
	"none":                 {want: nil},
	"true":                 {want: true},
	"false":                {want: false},
	"int_0":                {want: int64(0)},
	"int_1":                {want: int64(1)},
	"int_255":              {want: int64(255)},
	"int_256":              {want: int64(256)},
	"int_65535":            {want: int64(65535)},
	"int_65536":            {want: int64(65536)},
	"int_neg_1":            {want: int64(-1)},
	"int_neg_256":          {want: int64(-256)},
	"int32_max":            {want: int64(math.MaxInt32)},
	"int32_min":            {want: int64(math.MinInt32)},
	"int_2_31":             {want: int64(1 << 31)},
	"int_ms_timestamp":     {want: int64(1700000000123)},
	"int64_max":            {want: int64(math.MaxInt64)},
	"int64_min":            {want: int64(math.MinInt64)},
	"int_2_63":             {want: pkPow(2, 63)},
	"int_neg_2_63_minus_1": {want: pkSum(new(big.Int).Neg(pkPow(2, 63)), -1)},
	"int_2_64":             {want: pkPow(2, 64)},
	"int_2_1015":           {want: pkPow(2, 1015)},
	"int_neg_2_1100_plus":  {want: pkSum(new(big.Int).Neg(pkPow(2, 1100)), 12345)},
	"int_3_3000":           {want: pkPow(3, 3000)},
	"float_0":              {want: 0.0},
	"float_neg_0":          {want: math.Copysign(0, -1)},
	"float_1_5":            {want: 1.5},
	"float_0_1":            {want: 0.1},
	"float_1e300":          {want: 1e300},
	"float_neg_tiny":       {want: -5e-324},
	"float_inf":            {want: math.Inf(1)},
	"float_neg_inf":        {want: math.Inf(-1)},
	"float_nan":            {want: math.NaN()},
	"str_empty":            {want: ""},
	"str_a":                {want: "a"},
	"str_latin1":           {want: "héllo wörld"},
	"str_emoji":            {want: "party 🎉 中文"},
	"str_escapes":          {want: "line\nbreak\ttab \\ back\x00nul 'quote\" \r"},
	"str_300":              {want: strings.Repeat("x", 300)},
	"str_e_1000":           {want: strings.Repeat("é", 1000)},
	"bytes_empty":          {want: []byte{}},
	"bytes_a":              {want: []byte("a")},
	"bytes_binary":         {want: []byte{0, 0x7f, 0x80, 0xff}},
	"bytes_all": {want: func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()},
	"bytes_300":   {want: bytes.Repeat([]byte("y"), 300)},
	"list_empty":  {want: []any{}},
	"list_1":      {want: []any{int64(1)}},
	"list_3":      {want: []any{int64(1), int64(2), int64(3)}},
	"list_mixed":  {want: []any{nil, true, int64(2), 2.5, "three", []byte("four"), []any{int64(5)}, []any{int64(6)}, map[string]any{"seven": int64(7)}}, back: "[None, True, 2, 2.5, 'three', b'four', [5], [6], {'seven': 7}]"},
	"list_nested": {want: []any{[]any{int64(1), []any{int64(2), []any{int64(3), []any{}}}}}},
	"list_1500":   {want: pkRange(1500)},
	"tuple_empty": {want: []any{}, back: "[]"},
	"tuple_1":     {want: []any{int64(1)}, back: "[1]"},
	"tuple_2":     {want: []any{int64(1), "b"}, back: "[1, 'b']"},
	"tuple_3":     {want: []any{int64(1), int64(2), int64(3)}, back: "[1, 2, 3]"},
	"tuple_4":     {want: []any{int64(1), int64(2), int64(3), int64(4)}, back: "[1, 2, 3, 4]"},
	"tuple_nested": {want: []any{[]any{int64(1), int64(2)}, []any{int64(3), []any{int64(4)}}},
		back: "[[1, 2], [3, [4]]]"},
	"dict_empty": {want: map[string]any{}},
	"dict_1":     {want: map[string]any{"a": int64(1)}},
	"dict_nested": {want: map[string]any{"a": int64(1), "b": []any{int64(1), int64(2)},
		"c": map[string]any{"d": nil, "e": []any{true, 2.5}}},
		back: "{'a': 1, 'b': [1, 2], 'c': {'d': None, 'e': [True, 2.5]}}"},
	"dict_int_keys":    {want: map[any]any{int64(1): "one", int64(2): "two", int64(-3): "minus three"}},
	"dict_mixed_keys":  {want: map[any]any{"s": int64(1), int64(2): "two", 2.5: "float", nil: "none", false: "false"}},
	"dict_big_int_key": {want: map[any]any{int64(1 << 40): "big"}},
	"dict_1500": {want: func() map[string]any {
		m := make(map[string]any)
		for i := 0; i < 1500; i++ {
			m[fmt.Sprintf("k%d", i)] = int64(i)
		}
		return m
	}()},
	"shared_str":        {want: []any{"shared shared shared shared ", "shared shared shared shared ", "shared shared shared shared "}},
	"shared_bytes":      {want: []any{[]byte("shared bytes"), []byte("shared bytes")}},
	"shared_tuple":      {want: []any{[]any{int64(1), "two"}, []any{int64(1), "two"}}, back: "[[1, 'two'], [1, 'two']]"},
	"shared_dict":       {want: map[string]any{"x": map[string]any{"k": []any{int64(1), int64(2)}}, "y": map[string]any{"k": []any{int64(1), int64(2)}}}},
	"shared_empty_list": {want: []any{[]any{}, []any{}}},
	"record": {want: map[string]any{"user_id": int64(12345), "name": "Ada Lovelace", "email": "ada@example.com",
		"tags": []any{"admin", "beta"}, "score": 0.875, "active": true, "last_login": int64(1700000000123),
		"avatar": []byte("\x89PNG\r\n"), "manager": nil}},
}

// pkSame reports whether the natural values a and b are equal and of the
// same Go types: floats by bits (any NaN equals any NaN), *big.Int by
// value.
func pkSame(a, b any) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	switch x := a.(type) {
	case float64:
		y := b.(float64)
		return math.IsNaN(x) && math.IsNaN(y) || math.Float64bits(x) == math.Float64bits(y)
	case *big.Int:
		return x.Cmp(b.(*big.Int)) == 0
	case []byte:
		return bytes.Equal(x, b.([]byte))
	case []any:
		y := b.([]any)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !pkSame(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		return pkSameMap(x, b.(map[string]any))
	case map[any]any:
		return pkSameMap(x, b.(map[any]any))
	}
	return reflect.DeepEqual(a, b)
}

// pkSameMap is pkSame for two maps of one key type.
func pkSameMap[K comparable](x, y map[K]any) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		w, ok := y[k]
		if !ok || !pkSame(v, w) {
			return false
		}
	}
	return true
}

// pkIndexLine is one line of a cases.tsv.
type pkIndexLine struct {
	file, name, expr string
	protocol         string
}

// pkReadIndex reads dir/cases.tsv. For python/ and refused/, name is the
// case (the file less .pN.pickle); for go/, the file is name.pickle.
func pkReadIndex(t testing.TB, dir string) []pkIndexLine {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "pickle", dir, "cases.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []pkIndexLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") || sc.Text() == "" {
			continue
		}
		parts := strings.Split(sc.Text(), "\t")
		switch {
		case len(parts) == 3:
			name := parts[0][:strings.LastIndex(strings.TrimSuffix(parts[0], ".pickle"), ".")]
			lines = append(lines, pkIndexLine{file: parts[0], name: name, protocol: parts[1], expr: parts[2]})
		case len(parts) == 2:
			lines = append(lines, pkIndexLine{file: parts[0] + ".pickle", name: parts[0], expr: parts[1]})
		default:
			t.Fatalf("%s/cases.tsv: bad line %q", dir, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// pkRead reads testdata/pickle/dir/file.
func pkRead(t testing.TB, dir, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pickle", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPickleDecodePython(t *testing.T) {
	// Every pickle Python 3 wrote (protocols 0 to 5) decodes to the
	// case's Go value, and every case has a Go value.
	lines := pkReadIndex(t, "python")
	seen := make(map[string]int)
	for _, l := range lines {
		c, ok := pickleCases[l.name]
		if !ok {
			t.Errorf("%s (%s): no Go value for case %q in pickleCases", l.file, l.expr, l.name)
			continue
		}
		seen[l.name]++
		got, err := PickleCodec[any]{}.Decode(pkRead(t, "python", l.file))
		if err != nil {
			t.Errorf("%s (%s): %v", l.file, l.expr, err)
			continue
		}
		if !pkSame(got, c.want) {
			t.Errorf("%s (%s): decoded %#v, want %#v", l.file, l.expr, got, c.want)
		}
	}
	for name := range pickleCases {
		if seen[name] != 6 {
			t.Errorf("case %q has %d Python files, want 6 (protocols 0 to 5)", name, seen[name])
		}
	}
}

// pickleRefusals holds, by case of make_pickles.py's REFUSED, what the
// error must say.
var pickleRefusals = map[string]string{
	"os_system":           "posix.system",
	"os_system_nested":    "posix.system",
	"set":                 "a set",
	"set_nested":          "a set",
	"frozenset":           "a frozenset",
	"bytearray":           "a bytearray",
	"complex":             "a complex number",
	"decimal":             "decimal.Decimal",
	"date":                "datetime.date",
	"ordered_dict":        "collections.OrderedDict",
	"range":               "range", // builtins.range, __builtin__.xrange before protocol 3
	"shared_list":         "shared or recursive list",
	"shared_list_in_dict": "shared or recursive list",
	"recursive_list":      "shared or recursive list",
	"recursive_dict":      "recursive dict",
	"recursive_tuple":     "recursive",
	"tuple_key":           "key of Python type tuple",
	"bytes_key":           "key of Python type bytes",
	"lone_surrogate":      "lone surrogate",
}

func TestPickleDecodeRefused(t *testing.T) {
	// Python pickles of values outside the mapping (classes whose
	// unpickling calls os.system, sets, shared lists, ...) are refused with
	// an error that wraps ErrCorrupt and ErrPickleUnsupported and says what
	// the pickle held; the decoder calls nothing.
	seen := make(map[string]int)
	for _, l := range pkReadIndex(t, "refused") {
		want, ok := pickleRefusals[l.name]
		if !ok {
			t.Errorf("%s: no expected error for case %q", l.file, l.name)
			continue
		}
		seen[l.name]++
		for _, decode := range []func([]byte) (any, error){pkDecodeAs[any], pkDecodeAs[map[string]any], pkDecodeAs[[]any]} {
			got, err := decode(pkRead(t, "refused", l.file))
			if err == nil {
				t.Errorf("%s (%s): decoded %#v, want an error", l.file, l.expr, got)
				continue
			}
			if strings.Contains(err.Error(), "does not fit Go type") {
				continue // refused for V first; the any decode checks the message
			}
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrPickleUnsupported) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s (%s): %v, want ErrCorrupt and ErrPickleUnsupported saying %q", l.file, l.expr, err, want)
			}
		}
	}
	for name := range pickleRefusals {
		if seen[name] != 6 {
			t.Errorf("refused case %q has %d files, want 6", name, seen[name])
		}
	}
}

// pkDecodeAs decodes b with PickleCodec[V].
func pkDecodeAs[V any](b []byte) (any, error) { return PickleCodec[V]{}.Decode(b) }

// pkPy reads the protocol 4 Python pickle of case name.
func pkPy(t testing.TB, name string) []byte { return pkRead(t, "python", name+".p4.pickle") }

func TestPickleDecodeTyped(t *testing.T) {
	// Decoding into a V the pickle fits converts exactly; into a V it does
	// not fit is an ErrPickleType error naming where and what the pickle
	// held, never a truncation or rounding.
	s := "a"
	tests := []struct {
		name   string
		decode func([]byte) (any, error)
		want   any
		err    string // substring of the error; "" for success
	}{
		{"dict_1", pkDecodeAs[map[string]int64], map[string]int64{"a": 1}, ""},
		{"dict_1", pkDecodeAs[map[string]int], map[string]int{"a": 1}, ""},
		{"dict_1", pkDecodeAs[map[string]any], map[string]any{"a": int64(1)}, ""},
		{"dict_1", pkDecodeAs[map[string]string], nil, `value["a"]: the pickle holds int 1, which does not fit Go type string`},
		{"dict_1", pkDecodeAs[map[int]int], nil, `value (a key): the pickle holds str "a", which does not fit Go type int`},
		{"dict_int_keys", pkDecodeAs[map[int8]string], map[int8]string{1: "one", 2: "two", -3: "minus three"}, ""},
		{"dict_int_keys", pkDecodeAs[map[uint8]string], nil, "holds int -3, which does not fit Go type uint8 (out of range)"},
		{"dict_mixed_keys", pkDecodeAs[map[string]any], nil, "does not fit Go type string"},
		{"dict_nested", pkDecodeAs[map[string]map[string]any], nil, "which does not fit Go type map[string]interface {}"},
		{"list_3", pkDecodeAs[[]int64], []int64{1, 2, 3}, ""},
		{"list_3", pkDecodeAs[[]float64], []float64{1, 2, 3}, ""},
		{"list_3", pkDecodeAs[[]string], nil, "value[0]: the pickle holds int 1, which does not fit Go type string"},
		{"list_3", pkDecodeAs[map[string]any], nil, "the pickle holds a list of 3 items, which does not fit Go type map[string]interface {}"},
		{"tuple_3", pkDecodeAs[[]int], []int{1, 2, 3}, ""},
		{"list_mixed", pkDecodeAs[[]any], pickleCases["list_mixed"].want, ""},
		{"record", pkDecodeAs[map[string]any], pickleCases["record"].want, ""},
		{"int_2_63", pkDecodeAs[int64], nil, "holds int 9223372036854775808, which does not fit Go type int64 (out of range)"},
		{"int_2_63", pkDecodeAs[uint64], uint64(1 << 63), ""},
		{"int_2_63", pkDecodeAs[*big.Int], pkPow(2, 63), ""},
		{"int_2_63", pkDecodeAs[float64], float64(1 << 63), ""},
		{"int_2_64", pkDecodeAs[uint64], nil, "does not fit Go type uint64 (out of range)"},
		{"int_3_3000", pkDecodeAs[*big.Int], pkPow(3, 3000), ""},
		{"int_3_3000", pkDecodeAs[int64], nil, "out of range"},
		{"int_3_3000", pkDecodeAs[float64], nil, "not exact in float64"},
		{"int64_max", pkDecodeAs[float64], nil, "holds int 9223372036854775807, which does not fit Go type float64 (not exact in float64)"},
		{"int_neg_1", pkDecodeAs[uint], nil, "holds int -1, which does not fit Go type uint (out of range)"},
		{"int_256", pkDecodeAs[int8], nil, "holds int 256, which does not fit Go type int8 (out of range)"},
		{"int_256", pkDecodeAs[uint8], nil, "out of range"},
		{"int_255", pkDecodeAs[uint8], uint8(255), ""},
		{"int_1", pkDecodeAs[bool], nil, "holds int 1, which does not fit Go type bool"},
		{"true", pkDecodeAs[int64], nil, "holds bool True, which does not fit Go type int64"},
		{"float_1_5", pkDecodeAs[float32], float32(1.5), ""},
		{"float_nan", pkDecodeAs[float32], nil, ""},
		{"float_0_1", pkDecodeAs[float32], nil, "holds float 0.1, which does not fit Go type float32 (not exact in float32)"},
		{"float_1_5", pkDecodeAs[int64], nil, "holds float 1.5, which does not fit Go type int64"},
		{"str_a", pkDecodeAs[string], "a", ""},
		{"str_a", pkDecodeAs[*string], &s, ""},
		{"str_a", pkDecodeAs[[]byte], nil, `holds str "a", which does not fit Go type []uint8`},
		{"bytes_a", pkDecodeAs[[]byte], []byte("a"), ""},
		{"bytes_a", pkDecodeAs[json.RawMessage], json.RawMessage("a"), ""},
		{"bytes_a", pkDecodeAs[string], nil, `holds bytes b"a", which does not fit Go type string`},
		{"none", pkDecodeAs[*string], (*string)(nil), ""},
		{"none", pkDecodeAs[string], nil, "holds None, which does not fit Go type string (only pointers and interfaces hold None)"},
		{"none", pkDecodeAs[[]int], nil, "holds None, which does not fit Go type []int"},
		{"none", pkDecodeAs[map[string]any], nil, "holds None"},
		{"str_a", pkDecodeAs[fmt.Stringer], nil, "does not fit Go type fmt.Stringer (its Go form string does not implement it)"},
		{"dict_1", pkDecodeAs[struct{ A int }], nil, "Go type struct { A int } is not one PickleCodec decodes into"},
		{"list_3", pkDecodeAs[[3]int], nil, "Go type [3]int is not one PickleCodec decodes into"},
	}
	for _, tt := range tests {
		got, err := tt.decode(pkPy(t, tt.name))
		what := fmt.Sprintf("%s into %T", tt.name, got)
		if tt.err != "" || tt.want == nil {
			if err == nil {
				if tt.name == "float_nan" {
					if f := got.(float32); !math.IsNaN(float64(f)) {
						t.Errorf("%s: %v, want NaN", what, f)
					}
					continue
				}
				t.Errorf("%s: decoded %#v, want an error saying %q", what, got, tt.err)
				continue
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want ErrCorrupt saying %q", what, err, tt.err)
			}
			if strings.Contains(tt.err, "does not fit") && !errors.Is(err, ErrPickleType) {
				t.Errorf("%s: %v does not match ErrPickleType", what, err)
			}
			if strings.Contains(tt.err, "decodes into") && !errors.Is(err, ErrPickleUnsupported) {
				t.Errorf("%s: %v does not match ErrPickleUnsupported", what, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			if gb, ok := got.(*big.Int); !ok || gb.Cmp(tt.want.(*big.Int)) != 0 {
				t.Errorf("%s: decoded %#v, want %#v", what, got, tt.want)
			}
		}
	}
}

func TestPickleDecodeShared(t *testing.T) {
	// Objects Python shared decode shared (once per Go type), so a small
	// pickle referring many times to one object stays small in Go.
	got, err := PickleCodec[[][]byte]{}.Decode(pkPy(t, "shared_bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if &got[0][0] != &got[1][0] {
		t.Errorf("shared bytes decoded into two arrays")
	}
	// 100000 references to one bytes object of 64 KiB: 6.4 GB if each
	// reference were copied.
	var p bytes.Buffer
	p.WriteString("\x80\x04(B\x00\x00\x01\x00")
	p.Write(make([]byte, 1<<16))
	p.WriteString("\x94")
	for i := 0; i < 100000; i++ {
		p.WriteString("h\x00")
	}
	p.WriteString("l.")
	v, err := PickleCodec[any]{}.Decode(p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if l := v.([]any); len(l) != 100001 || len(l[100000].([]byte)) != 1<<16 {
		t.Errorf("decoded %d items", len(l))
	}
}

// pickleGoCases are values that only Go writes, with the Python expression
// each must load as.
var pickleGoCases = []struct {
	name  string
	value any
	py    string
}{
	{"go_uint64_max", uint64(math.MaxUint64), "2**64 - 1"},
	{"go_int8", int8(-5), "-5"},
	{"go_uint8", uint8(200), "200"},
	{"go_float32", float32(1.5), "1.5"},
	{"go_typed_map", map[string][]string{"a": {"x", "y"}, "b": nil}, "{'a': ['x', 'y'], 'b': []}"},
	{"go_nil_slice", []int(nil), "[]"},
	{"go_nil_bytes", []byte(nil), "b''"},
	{"go_nil_map", map[string]int(nil), "{}"},
	{"go_nil_pointer", (*string)(nil), "None"},
	{"go_pointer", func() *string { s := "pointed"; return &s }(), "'pointed'"},
	{"go_named_bytes", json.RawMessage(`{"a":1}`), "b'{\"a\":1}'"},
	{"go_big_neg", new(big.Int).Neg(pkPow(2, 100)), "-2**100"},
	{"go_big_small", big.NewInt(5), "5"},
	{"go_big_4300_digits", pkSum(pkPow(10, 4300), -1), "10**4300 - 1"},
	{"go_map_any_keys", map[any]any{"s": 1, int64(2): "two", 2.5: "f", nil: "none", false: "false"},
		"{'s': 1, 2: 'two', 2.5: 'f', None: 'none', False: 'false'}"},
	{"go_uint_keys", map[uint16]bool{1: true, 65535: false}, "{1: True, 65535: False}"},
	{"go_float_keys", map[float64]string{0.5: "half", -1: "minus one"}, "{0.5: 'half', -1.0: 'minus one'}"},
	{"go_bool_keys", map[bool]int{true: 1, false: 0}, "{True: 1, False: 0}"},
	{"go_int_slice", []int{1, -2, 1 << 40}, "[1, -2, 2**40]"},
	{"go_string_slice", []string{"a", "é"}, "['a', '\\xe9']"},
	{"go_nested_any", []any{map[string]any{"k": []any{nil, []byte("b")}}}, "[{'k': [None, b'b']}]"},
	{"go_dag", func() any { s := []any{"x"}; return []any{s, s} }(), "[['x'], ['x']]"},
	{"go_str_300_utf8", strings.Repeat("ü", 300), "'\\xfc' * 300"},
	{"go_bytes_300", bytes.Repeat([]byte{0xff}, 300), "b'\\xff' * 300"},
}

// pkEncodeCases lists, by file name in testdata/pickle/go/, every value the
// encode test writes and the Python expression it must load as.
func pkEncodeCases(t *testing.T) (names []string, values map[string]any, py map[string]string) {
	values, py = make(map[string]any), make(map[string]string)
	exprs := make(map[string]string)
	for _, l := range pkReadIndex(t, "python") {
		exprs[l.name] = l.expr
	}
	for name, c := range pickleCases {
		names = append(names, name)
		values[name] = c.want
		py[name] = exprs[name]
		if c.back != "" {
			py[name] = c.back
		}
	}
	for _, c := range pickleGoCases {
		names = append(names, c.name)
		values[c.name] = c.value
		py[c.name] = c.py
	}
	sort.Strings(names)
	return names, values, py
}

// pkView renders og-rek's decoding of a pickle with dict items sorted, so
// that two encodings of one value compare equal whatever order Go's map
// iteration wrote the items in. Types are part of the view.
func pkView(t testing.TB, b []byte) string {
	t.Helper()
	x, err := ogórek.NewDecoderWithConfig(bytes.NewReader(b), &ogórek.DecoderConfig{StrictUnicode: true}).Decode()
	if err != nil {
		t.Fatalf("og-rek: %v", err)
	}
	var view func(x any) string
	view = func(x any) string {
		switch v := x.(type) {
		case []any:
			parts := make([]string, len(v))
			for i := range v {
				parts[i] = view(v[i])
			}
			return "[" + strings.Join(parts, ", ") + "]"
		case ogórek.Tuple:
			return "tuple" + view([]any(v))
		case map[any]any:
			parts := make([]string, 0, len(v))
			for k, e := range v {
				parts = append(parts, view(k)+": "+view(e))
			}
			sort.Strings(parts)
			return "{" + strings.Join(parts, ", ") + "}"
		case *big.Int:
			return "big(" + v.String() + ")"
		case float64:
			return fmt.Sprintf("float(%x)", math.Float64bits(v))
		}
		return fmt.Sprintf("%T(%#v)", x, x)
	}
	return fmt.Sprintf("protocol %d: %s", b[1], view(x))
}

func TestPickleEncodePythonReads(t *testing.T) {
	// What Encode writes, Python's pickle.loads reads as the expected value
	// of exactly the expected types: testdata/pickle/go/ holds Encode's
	// output as Python checked it (go/verdicts.tsv, written by
	// make_pickles.py check), and Encode still writes the same pickle up to
	// the order of dict items. Decode reads Encode's output back.
	names, values, py := pkEncodeCases(t)
	dir := filepath.Join("testdata", "pickle", "go")
	if *pickleWrite {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var index strings.Builder
		index.WriteString("# file (without .pickle)\tPython expression pickle.loads must give (go test -run TestPickleEncodePythonReads -pickle.write)\n")
		for _, name := range names {
			b, err := PickleCodec[any]{}.Encode(values[name])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := os.WriteFile(filepath.Join(dir, name+".pickle"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&index, "%s\t%s\n", name, py[name])
		}
		if err := os.WriteFile(filepath.Join(dir, "cases.tsv"), []byte(index.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; now run python3 testdata/pickle/make_pickles.py check", dir)
	}
	verdicts := make(map[string][]string) // name: verdict, SHA-256, repr
	for _, l := range strings.Split(string(pkRead(t, "go", "verdicts.tsv")), "\n") {
		if parts := strings.SplitN(l, "\t", 4); len(parts) == 4 && !strings.HasPrefix(l, "#") {
			verdicts[parts[0]] = parts[1:]
		}
	}
	index := make(map[string]string)
	for _, l := range pkReadIndex(t, "go") {
		index[l.name] = l.expr
	}
	for _, name := range names {
		b, err := PickleCodec[any]{}.Encode(values[name])
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checked := pkRead(t, "go", name+".pickle")
		if v := verdicts[name]; len(v) != 3 || v[0] != "ok" {
			t.Errorf("%s: Python's verdict on the Go-written pickle is %q, want ok", name, v)
		} else if sum := fmt.Sprintf("%x", sha256.Sum256(checked)); v[1] != sum {
			t.Errorf("%s: Python checked bytes with SHA-256 %s, go/%s.pickle has %s: run make_pickles.py check", name, v[1], name, sum)
		}
		if index[name] != py[name] {
			t.Errorf("%s: Python checked against %q, the test expects %q: rewrite with -pickle.write", name, index[name], py[name])
		}
		if got, want := pkView(t, b), pkView(t, checked); got != want {
			t.Errorf("%s: Encode writes\n%s\nPython checked\n%s", name, got, want)
		}
		back, err := PickleCodec[any]{}.Decode(b)
		if err != nil {
			t.Errorf("%s: decoding Encode's output: %v", name, err)
		}
		if c, ok := pickleCases[name]; ok && !pkSame(back, c.want) {
			t.Errorf("%s: Encode then Decode gives %#v, want %#v", name, back, c.want)
		}
	}
	if len(index) != len(names) {
		t.Errorf("go/cases.tsv has %d cases, the test %d: rewrite with -pickle.write", len(index), len(names))
	}
}

func TestPickleEncodeRefused(t *testing.T) {
	// Go values with no Python form are refused with ErrPickleUnsupported,
	// never written as something Python would read differently.
	cyclicSlice := []any{nil}
	cyclicSlice[0] = cyclicSlice
	cyclicMap := map[string]any{}
	cyclicMap["self"] = cyclicMap
	type node struct{ Next *node }
	deep := any(nil)
	for i := 0; i < pickleMaxDepth+2; i++ {
		deep = []any{deep}
	}
	tests := []struct {
		name  string
		value any
		err   string
	}{
		{"struct", struct{ A int }{1}, "Go type struct { A int } has no pickle form"},
		{"array", [2]int{1, 2}, "Go type [2]int has no pickle form"},
		{"chan", make(chan int), "Go type chan int has no pickle form"},
		{"func", func() {}, "has no pickle form"},
		{"complex", complex(1, 2), "Go type complex128 has no pickle form"},
		{"uintptr", uintptr(1), "Go type uintptr has no pickle form"},
		{"invalid utf-8", "a\xffb", `Go string "a\xffb" is not valid UTF-8`},
		{"invalid utf-8 key", map[string]int{"\xff": 1}, `value (a key): Go string "\xff" is not valid UTF-8`},
		{"nested invalid utf-8", map[string]any{"k": []any{1, "\xc3"}}, `value["k"][1]: Go string`},
		{"cyclic slice", cyclicSlice, "contains itself"},
		{"cyclic map", cyclicMap, "contains itself"},
		{"too deep", deep, "value[0][0][0][0]...(9988 levels)...[0][0][0][0][0][0][0][0]: the Go value nests slices, maps and pointers deeper than 10000"},
		{"python-equal keys", map[any]any{int64(1): "a", 1.0: "b"}, "are one key in Python"},
		{"python-equal bool key", map[any]any{true: "a", uint8(1): "b"}, "are one key in Python"},
		{"python-equal big float key", map[any]any{uint64(1 << 63): "a", float64(1 << 63): "b"}, "are one key in Python"},
		{"struct key", map[any]int{struct{}{}: 1}, "Go map key of type struct {} has no pickle form"},
		{"pointer key", map[*int]int{new(int): 1}, "Go map key of type *int"},
		{"4301 digits", pkPow(10, 4300), "more than 4300 decimal digits"},
		{"-4301 digits", new(big.Int).Neg(pkPow(10, 4300)), "more than 4300 decimal digits"},
		{"huge", pkPow(2, 20000), "more than 4300 decimal digits"},
		{"struct pointer", &node{}, "has no pickle form"},
	}
	for _, tt := range tests {
		b, err := PickleCodec[any]{}.Encode(tt.value)
		if err == nil {
			t.Errorf("%s: encoded %q, want an error", tt.name, b)
			continue
		}
		if !errors.Is(err, ErrPickleUnsupported) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v, want ErrPickleUnsupported (not ErrCorrupt) saying %q", tt.name, err, tt.err)
		}
	}
	// NaN keys are distinct in Go and in Python alike.
	if _, err := (PickleCodec[map[float64]int]{}).Encode(map[float64]int{math.NaN(): 1, math.NaN(): 2}); err != nil {
		t.Errorf("NaN keys: %v", err)
	}
}

func TestPickleOgrekDefectsGuarded(t *testing.T) {
	// og-rek alone decodes these Python pickles wrongly without an error;
	// PickleCodec decodes them right or refuses them.
	ogrek := func(b []byte) (any, error) {
		return ogórek.NewDecoder(bytes.NewReader(b)).Decode()
	}
	// x = [1]; [x, x]: og-rek's memo keeps the list as it was memoized.
	shared := pkRead(t, "refused", "shared_list.p4.pickle")
	if got, err := ogrek(shared); err != nil || !reflect.DeepEqual(got, []any{[]any{int64(1)}, []any{}}) {
		t.Errorf("og-rek on [x, x] with x = [1]: %#v, %v; the defect this test guards against is gone", got, err)
	}
	if _, err := (PickleCodec[any]{}).Decode(shared); !errors.Is(err, ErrPickleUnsupported) {
		t.Errorf("PickleCodec on [x, x]: %v, want ErrPickleUnsupported", err)
	}
	// A list put in a tuple through DUP and grown afterwards: Python reads
	// ([2],), og-rek ([],).
	embedded := []byte("]2\x85q\x000K\x02a0h\x00.")
	if got, err := ogrek(embedded); err != nil || !reflect.DeepEqual(got, ogórek.Tuple{[]any{}}) {
		t.Errorf("og-rek on a grown embedded list: %#v, %v; the defect this test guards against is gone", got, err)
	}
	if _, err := (PickleCodec[any]{}).Decode(embedded); !errors.Is(err, ErrPickleUnsupported) {
		t.Errorf("PickleCodec on a grown embedded list: %v, want ErrPickleUnsupported", err)
	}
	// LONG1 of 128 bytes or more: og-rek reads the length as signed.
	// A payload whose bytes are themselves opcodes decodes silently wrong:
	// 2**1023 + the little-endian bytes "N" "." ... read as None.
	payload := make([]byte, 129)
	payload[0], payload[1] = 'N', '.'
	payload[127] = 0x80 // bit 1023
	long1 := append([]byte{0x80, 0x02, 0x8a, 129}, payload...)
	long1 = append(long1, '.')
	if got, err := ogrek(long1); err != nil || got != (ogórek.None{}) {
		t.Errorf("og-rek on a 129-byte LONG1: %#v, %v, not None; the defect this test guards against is gone", got, err)
	}
	want := new(big.Int).SetBytes(reverse(payload))
	if got, err := (PickleCodec[*big.Int]{}).Decode(long1); err != nil || got.Cmp(want) != 0 {
		t.Errorf("PickleCodec on a 129-byte LONG1: %v, %v, want %v", got, err, want)
	}
	// Python's own 128-byte LONG1 (2**1015).
	p := pkPy(t, "int_2_1015")
	if got, err := ogrek(p); err == nil && got.(*big.Int).Cmp(pkPow(2, 1015)) == 0 {
		t.Errorf("og-rek decodes 2**1015 right; the defect this test guards against is gone")
	}
}

// reverse returns b reversed.
func reverse(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return r
}

// pickleHostile are hand-made pickles: what each must decode to, or the
// error it must give.
var pickleHostile = []struct {
	name, data string
	want       any
	err        string // substring; "" for success
	unsup      bool   // the error also wraps ErrPickleUnsupported
}{
	{"empty", "", nil, "empty input", false},
	{"no stop", "\x80\x04N", nil, "input ends before STOP", false},
	{"trailing", "N.x", nil, "1 bytes follow STOP", false},
	{"two values", "NN.", nil, "STOP leaves 2 values", false},
	{"open mark", "(N.", nil, "1 marks", false},
	{"unknown opcode", "\x80\x04\xff.", nil, "unknown opcode 0xff", false},
	{"protocol 6", "\x80\x06N.", nil, "protocol 6 is newer than 5", true},
	{"frame beyond input", "\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N.", nil, "length 255 is beyond", false},
	{"binunicode beyond input", "X\xff\xff\xff\x7fab.", nil, "beyond the", false},
	{"binbytes beyond input", "B\x05\x00\x00\x00ab.", nil, "beyond the", false},
	{"long4 negative", "\x8b\xff\xff\xff\xff.", nil, "beyond the", false},
	{"missing memo", "h\x05.", nil, "memo entry 5 was never stored", false},
	{"text put not canonical", "Np007\n0g7\n.", nil, `memo index "007" is not a decimal number`, false},
	{"int hex", "I0x10\n.", nil, `"0x10" is not a decimal integer`, false},
	{"int plus", "I+5\n.", nil, "not a decimal integer", false},
	{"int leading zero", "I010\n.", nil, "not a decimal integer", false},
	{"long without L", "L5\n.", nil, "does not end in L", false},
	{"int 4301 digits", "I" + strings.Repeat("9", 4301) + "\n.", nil, "4301 digits is beyond Python's limit of 4300", true},
	{"int 4300 digits", "I" + strings.Repeat("9", 4300) + "\n.", pkSum(pkPow(10, 4300), -1), "", false},
	{"float hex", "F0x1p3\n.", nil, `"0x1p3" is not a float`, false},
	{"float text", "F-1.5e3\n.", -1500.0, "", false},
	{"float nan text", "Fnan\n.", math.NaN(), "", false},
	{"int text bools", "(I01\nI00\nI-7\nl.", []any{true, false, int64(-7)}, "", false},
	{"py2 str ascii", "\x80\x02U\x03abc.", "abc", "", false},
	{"py2 binstring ascii", "T\x02\x00\x00\x00hi.", "hi", "", false},
	{"py2 quoted string", "S'a\\nb'\n.", "a\nb", "", false},
	{"py2 str non-ascii", "\x80\x02U\x02\xc3\xa9.", nil, "Python 2 str with non-ASCII bytes", true},
	{"py2 str key", "\x80\x02}U\x01kK\x01s.", map[string]any{"k": int64(1)}, "", false},
	{"invalid utf-8 str", "\x80\x04\x8c\x02\xc3\x28.", nil, "str argument is not valid UTF-8", false},
	{"surrogate str", "X\x03\x00\x00\x00\xed\xa0\x80.", nil, "lone surrogate", true},
	{"unicode escape surrogate", "V\\ud800\n.", nil, "lone surrogate", true},
	{"bare global", "c_codecs\nencode\n.", nil, "bare global name", true},
	{"global in list", "(c_codecs\nencode\nl.", nil, "reference to Python's _codecs.encode", true},
	{"codecs encode utf-8", "c_codecs\nencode\n(X\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8tR.", nil, "call of Python's _codecs.encode with 2 arguments", true},
	{"bytes with args", "c__builtin__\nbytes\n(K\x01tR.", nil, "call of Python's __builtin__.bytes with 1 arguments", true},
	{"bytes key via reduce", "}c_codecs\nencode\nX\x01\x00\x00\x00kX\x06\x00\x00\x00latin1\x86RK\x01s.", nil, "key of Python type bytes", true},
	{"reduce of non-global", "N)R.", nil, "REDUCE of a None with a tuple", false},
	{"os.system", "cos\nsystem\n(S'echo owned'\ntR.", nil, "os.system", true},
	{"stack global os.system", "\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.", nil, "os.system", true},
	{"stack global escaped", "Vos\nVsystem\n\x93.", nil, "named by escaped text", true},
	{"builtins eval", "\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.", nil, "__builtin__.eval", true},
	{"persistent id", "P1\n.", nil, "persistent id", true},
	{"binpersid", "K\x00Q.", nil, "persistent id", true},
	{"build", "}}b.", nil, "builds an instance", true},
	{"newobj", "\x80\x02N)\x81.", nil, "builds an instance", true},
	{"ext1", "\x80\x02\x82\x01.", nil, "extension registry", true},
	{"empty set", "\x80\x04\x8f.", nil, "a set", true},
	{"next buffer", "\x80\x05\x97.", nil, "out-of-band", true},
	{"bytearray8", "\x80\x05\x96\x00\x00\x00\x00\x00\x00\x00\x00.", nil, "a bytearray", true},
	{"binunicode8", "\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x00.", nil, "4 GiB", true},
	{"pop mark", "(N1N.", nil, "POP_MARK", true},
	{"dup list then grow", "]2K\x01a0.", nil, "shared or recursive list", true},
	{"get then grow", "]q\x00h\x00K\x01a0.", nil, "shared or recursive list", true},
	{"grown after embedding", "]2\x85q\x000K\x02a0h\x00.", nil, "shared or recursive list", true},
	{"grown before put", "]K\x01aq\x000(h\x00h\x00l.", []any{[]any{int64(1)}, []any{int64(1)}}, "", false},
	{"list key", "}]K\x01s.", nil, "key of Python type list", true},
	{"dict key", "(}K\x01d.", nil, "key of Python type dict", true},
	{"one and true keys", "(K\x01K\x01\x88K\x02d.", nil, "which are one key in Python", false},
	{"one and 1.0 keys", "(K\x01K\x01G?\xf0\x00\x00\x00\x00\x00\x00K\x02d.", nil, "which are one key in Python", false},
	{"big int key", "\x80\x02}\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01K\x01s.", nil, "beyond 64 bits", true},
	{"appends to dict", "}(K\x01e.", nil, "appends to a dict, not a list", false},
	{"setitem on list", "]K\x01K\x02s.", nil, "SETITEM on a list", false},
	{"append underflow", "(K\x01a.", nil, "stack underflow", false},
	{"dup mark", "(2.", nil, "stack underflow", false},
	{"put mark", "(q\x00.", nil, "stack underflow", false},
	{"pop empty", "0.", nil, "POP on an empty stack", false},
	{"pop mark as pop", "(0K\x05.", int64(5), "", false},
	{"odd dict", "(K\x01d.", nil, "odd number of items", false},
	{"long1 empty", "\x8a\x00.", int64(0), "", false},
	{"long1 negative", "\x8a\x02\x00\xff.", int64(-256), "", false},
	{"long4 small", "\x8b\x02\x00\x00\x00\xff\x7f.", int64(32767), "", false},
}

func TestPickleDecodeHostile(t *testing.T) {
	// Hand-made pickles: malformed input is ErrCorrupt naming the byte,
	// anything that would import or call Python code is refused, and the
	// odd but valid forms decode as Python decodes them.
	for _, tt := range pickleHostile {
		got, err := PickleCodec[any]{}.Decode([]byte(tt.data))
		if tt.err == "" && tt.want == nil {
			if err == nil {
				t.Errorf("%s: decoded %#v, want an error", tt.name, got)
			} else if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: %v, want ErrCorrupt", tt.name, err)
			}
			continue
		}
		if tt.err != "" {
			if err == nil {
				t.Errorf("%s: decoded %#v, want an error saying %q", tt.name, got, tt.err)
				continue
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.err) || errors.Is(err, ErrPickleUnsupported) != tt.unsup {
				t.Errorf("%s: %v, want ErrCorrupt (ErrPickleUnsupported %v) saying %q", tt.name, err, tt.unsup, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if w, ok := tt.want.(*big.Int); ok {
			if g, ok := got.(*big.Int); !ok || g.Cmp(w) != 0 {
				t.Errorf("%s: decoded %#v, want %v", tt.name, got, w)
			}
			continue
		}
		if !pkSame(got, tt.want) {
			t.Errorf("%s: decoded %#v, want %#v", tt.name, got, tt.want)
		}
	}
}

// pkScanVerified runs the guard over data one opcode at a time, checking
// its invariants after each, and returns its error.
func pkScanVerified(t *testing.T, data []byte) error {
	s := newPkScan(data)
	for {
		done, err := s.next()
		if err != nil {
			return err
		}
		if verr := s.verify(); verr != nil {
			t.Fatalf("after the opcode at byte %d of %q: %v", s.op, data, verr)
		}
		if done {
			return nil
		}
	}
}

func TestPickleScanInvariants(t *testing.T) {
	// The guard keeps its invariants after every opcode of every test
	// pickle, and reaches the verdict run gives.
	var inputs [][]byte
	for _, dir := range []string{"python", "refused"} {
		for _, l := range pkReadIndex(t, dir) {
			inputs = append(inputs, pkRead(t, dir, l.file))
		}
	}
	for _, h := range pickleHostile {
		inputs = append(inputs, []byte(h.data))
	}
	for _, in := range inputs {
		err := pkScanVerified(t, in)
		_, _, want := pickleScan(in)
		if (err == nil) != (want == nil) {
			t.Errorf("%q: stepped %v, run %v", in, err, want)
		}
	}
}

func TestPickleDecodeDeep(t *testing.T) {
	// Nesting beyond 10000 levels is refused, before Go's stack suffers;
	// 10000 levels decode.
	for _, tc := range []struct {
		depth int
		ok    bool
	}{{pickleMaxDepth, true}, {pickleMaxDepth + 1, false}, {1000000, false}} {
		p := bytes.Repeat([]byte("("), tc.depth)
		p = append(p, bytes.Repeat([]byte("l"), tc.depth)...)
		p = append(p, '.')
		_, err := PickleCodec[any]{}.Decode(p)
		if tc.ok != (err == nil) {
			t.Errorf("%d nested lists: %v", tc.depth, err)
		}
		if err != nil && !errors.Is(err, ErrPickleUnsupported) {
			t.Errorf("%d nested lists: %v, want ErrPickleUnsupported", tc.depth, err)
		}
	}
}

func TestPickleDecodeTruncated(t *testing.T) {
	// Every proper prefix of every Python pickle is refused as ErrCorrupt.
	for _, l := range pkReadIndex(t, "python") {
		b := pkRead(t, "python", l.file)
		for n := 0; n < len(b); n++ {
			if n > 300 && n < len(b)-300 && n%97 != 0 {
				continue
			}
			if v, err := (PickleCodec[any]{}).Decode(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s cut to %d bytes: %#v, %v, want ErrCorrupt", l.file, n, v, err)
			}
		}
	}
}

func TestPickleMapGet(t *testing.T) {
	// Through Map, a value another process committed decodes; a corrupt
	// one is ErrCorrupt naming the key, with each prefix once.
	ctx := context.Background()
	dir := t.TempDir()
	store, err := NewFileStore(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	inst, err := Open(store, Options{StatePath: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Set(ctx, []byte("py"), pkPy(t, "record")); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Set(ctx, []byte("evil"), pkPy(t, "record")[:20]); err != nil {
		t.Fatal(err)
	}
	m := NewMap(inst, PickleCodec[map[string]any]{})
	got, err := m.Get([]byte("py"))
	if err != nil || !pkSame(got, pickleCases["record"].want) {
		t.Errorf("Get(py) = %#v, %v", got, err)
	}
	_, err = m.Get([]byte("evil"))
	if !errors.Is(err, ErrCorrupt) || strings.Count(err.Error(), "corrupt") != 1 || !strings.Contains(err.Error(), `"evil"`) {
		t.Errorf("Get(evil) = %v, want ErrCorrupt naming the key once", err)
	}
	if _, err := m.Set(ctx, []byte("go"), map[string]any{"a": []any{int64(1), "b"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Get([]byte("go")); err != nil || !pkSame(got, map[string]any{"a": []any{int64(1), "b"}}) {
		t.Errorf("Get(go) = %#v, %v", got, err)
	}
	if _, err := NewMap(inst, PickleCodec[any]{}).Set(ctx, []byte("bad"), "\xff"); !errors.Is(err, ErrPickleUnsupported) {
		t.Errorf("Set of invalid UTF-8: %v, want ErrPickleUnsupported", err)
	}
}

// FuzzPickleDecode decodes arbitrary bytes: the decoder never panics (nor
// og-rek behind it), fails only with ErrCorrupt, and whatever it accepts
// Encode writes and Decode reads back the same (but integers beyond the
// 4300 digits Encode refuses). Seeds: every pickle under testdata/pickle
// and the hand-made ones of TestPickleDecodeHostile.
func FuzzPickleDecode(f *testing.F) {
	for _, dir := range []string{"python", "refused"} {
		for _, l := range pkReadIndex(f, dir) {
			f.Add(pkRead(f, dir, l.file))
		}
	}
	for _, h := range pickleHostile {
		f.Add([]byte(h.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkScanVerified(t, data)
		v, err := PickleCodec[any]{}.Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "panicked") {
				t.Fatalf("Decode: %v", err)
			}
			return
		}
		for _, decode := range []func([]byte) (any, error){pkDecodeAs[map[string]any], pkDecodeAs[[]string], pkDecodeAs[int64], pkDecodeAs[*big.Int]} {
			if _, err := decode(data); err != nil && (!errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "panicked")) {
				t.Fatalf("typed Decode: %v", err)
			}
		}
		b, err := PickleCodec[any]{}.Encode(v)
		if err != nil {
			if strings.Contains(err.Error(), "decimal digits") {
				return
			}
			t.Fatalf("Encode of decoded %#v: %v", v, err)
		}
		back, err := PickleCodec[any]{}.Decode(b)
		if err != nil || !pkSame(back, v) {
			t.Fatalf("round trip of %#v: %#v, %v", v, back, err)
		}
	})
}

// BenchmarkPickleDecode decodes a Python-written record (a dict of nine
// fields, protocol 4) into map[string]any.
func BenchmarkPickleDecode(b *testing.B) {
	data := pkPy(b, "record")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := (PickleCodec[map[string]any]{}).Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPickleEncode encodes the same record.
func BenchmarkPickleEncode(b *testing.B) {
	v := pickleCases["record"].want.(map[string]any)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := (PickleCodec[map[string]any]{}).Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPickleDecodeList1500 decodes list(range(1500)), protocol 4.
func BenchmarkPickleDecodeList1500(b *testing.B) {
	data := pkPy(b, "list_1500")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := (PickleCodec[[]int64]{}).Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
