package whycache

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	ogórek "github.com/kisielk/og-rek"
)

// PickleProtocol is the pickle protocol PickleCodec.Encode writes: 4,
// Python's default since 3.8. Python whycache needs Python 3.6 or later,
// and every Python from 3.4 on reads protocol 4; unlike protocols 2 and 3 it
// needs no global (_codecs.encode) for bytes, and it is what Python
// processes sharing the log write themselves.
const PickleProtocol = 4

// pickleMaxDepth bounds the nesting of lists, tuples and dicts that
// PickleCodec decodes and encodes. Python pickles at most about 1000 levels
// with its default recursion limit (about 500 of lists or dicts).
const pickleMaxDepth = 10000

var (
	// ErrPickleUnsupported is matched (errors.Is) by PickleCodec errors
	// about a value outside the mapping: a pickle holding a Python class,
	// set, bytearray, shared or recursive list, bytes dict key and the like
	// (Decode; such errors also match ErrCorrupt), or a Go value with no
	// Python form such as a struct, a channel or a string that is not
	// UTF-8 (Encode).
	ErrPickleUnsupported = errors.New("whycache: value outside the pickle mapping")

	// ErrPickleType is matched by PickleCodec.Decode errors about a pickle
	// that is well formed and mapped but does not fit the codec's Go type
	// V: a str where V is int64, an int beyond V's range or not exact in a
	// float V, None where V is not a pointer or interface. Such errors also
	// match ErrCorrupt.
	ErrPickleType = errors.New("whycache: pickle does not fit the Go type")
)

// pickleError is the error of PickleCodec. Its message starts with
// "pickle: " and carries no sentinel's text, so that Map.Get, which
// prefixes ErrCorrupt, names each thing once.
type pickleError struct {
	msg     string
	corrupt bool  // a Decode error: matches ErrCorrupt
	kind    error // nil, ErrPickleUnsupported or ErrPickleType
}

// Error returns the message, starting "pickle: ".
func (e *pickleError) Error() string { return "pickle: " + e.msg }

// Unwrap returns the sentinels the error matches.
func (e *pickleError) Unwrap() []error {
	var errs []error
	if e.corrupt {
		errs = append(errs, ErrCorrupt)
	}
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	return errs
}

// pickleErr returns a Decode error: ErrCorrupt, and kind when not nil.
func pickleErr(kind error, format string, args ...any) error {
	return &pickleError{msg: fmt.Sprintf(format, args...), corrupt: true, kind: kind}
}

// pickleEncErr returns an Encode error (ErrPickleUnsupported).
func pickleEncErr(format string, args ...any) error {
	return &pickleError{msg: fmt.Sprintf(format, args...), kind: ErrPickleUnsupported}
}

// PickleCodec stores values as Python pickles, the way Python whycache
// stores every value (pickle.dumps and pickle.loads), so that Go and Python
// processes share one log. The zero value is ready to use and safe for
// concurrent use.
//
// Python and Go values map as follows (Decode ← and Encode →):
//
//	None        ↔ nil (V any, pointers); Encode also writes nil
//	              pointers and interfaces as None
//	bool        ↔ bool
//	int         ↔ int64 when it fits, *big.Int beyond 64 bits (V any);
//	              any Go integer type when V asks for one and the value
//	              fits it (else an error, never truncation); *big.Int;
//	              float64 and float32 when the value is exact in them
//	float       ↔ float64; float32 when exact
//	str         ↔ string (valid UTF-8 both ways)
//	bytes       ↔ []byte
//	list, tuple → []any, or []T when V asks for it; Encode writes
//	              every Go slice (but []byte) as a list, nil as []
//	dict        ↔ map[string]any when every key is a str, else
//	              map[any]any (V any); map[K]T when V asks for it, keys
//	              of type str, int, float, bool and None; nil maps are
//	              written as {}
//
// Values that Python shared (one object referenced twice) decode shared:
// two references to one bytes object give two []byte with one backing
// array. Tuples read back as []any and are written as lists. Python 2 str
// (protocols 0 to 2 from Python 2) decodes as string when it is ASCII and is
// refused otherwise, as Python 3's pickle.loads does by default.
//
// Decode refuses, with an error wrapping ErrCorrupt and
// ErrPickleUnsupported, every pickle that would make Python import or call
// anything but the constructors Python itself uses for bytes
// (_codecs.encode, builtins.bytes); nothing is ever imported or called.
// It also refuses sets, bytearrays, complex numbers, class instances, lists
// referenced from two places (og-rek cannot rebuild them), dicts with bytes
// or tuple keys, nesting deeper than 10000, and text integers beyond
// Python's 4300-digit limit. Malformed pickles (truncated, trailing bytes,
// stack errors) wrap ErrCorrupt; pickles that do not fit V also wrap
// ErrPickleType. Errors name where in the value the problem is and what the
// pickle held there.
//
// Encode writes protocol 4 (PickleProtocol), without memo (a Go value
// referenced twice is written twice) and with dict items in Go's map order,
// so two encodings of one map may differ in bytes, never in what Python
// reads. Its errors wrap
// ErrPickleUnsupported: structs, arrays, channels, functions, complex
// numbers, strings that are not UTF-8, cyclic values, maps whose keys
// Python would merge (1, 1.0 and true in one map[any]any), and integers of
// more than 4300 decimal digits (written in text by og-rek, which Python
// 3.11 and later refuse to read).
//
// Decoding is og-rek's (github.com/kisielk/og-rek) behind a guard that walks
// the opcodes first (see pickleScan); encoding is og-rek's after the value
// is checked and converted to the types og-rek maps.
type PickleCodec[V any] struct{}

// Encode returns the protocol 4 pickle of v.
func (PickleCodec[V]) Encode(v V) ([]byte, error) {
	x, err := (&pkEncoder{}).value(reflect.ValueOf(&v).Elem(), nil, 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := pickleDump(&buf, x); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// pickleDump writes x, made of the types pkEncoder returns, with og-rek.
func pickleDump(buf *bytes.Buffer, x any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = pickleEncErr("og-rek panicked encoding the value: %v", r)
		}
	}()
	enc := ogórek.NewEncoderWithConfig(buf, &ogórek.EncoderConfig{Protocol: PickleProtocol, StrictUnicode: true})
	if err := enc.Encode(x); err != nil {
		return pickleEncErr("og-rek: %v", err)
	}
	return nil
}

// Decode decodes the pickle data into a V.
func (PickleCodec[V]) Decode(data []byte) (V, error) {
	var zero V
	x, err := pickleLoad(data)
	if err != nil {
		return zero, err
	}
	rv, err := (&pkDecoder{}).value(x, reflect.TypeFor[V](), nil, 0)
	if err != nil || !rv.IsValid() {
		return zero, err
	}
	return rv.Interface().(V), nil
}

// pickleLoad runs the guard over data, then og-rek, and returns og-rek's
// value.
func pickleLoad(data []byte) (x any, err error) {
	stream, bigs, err := pickleScan(data)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			x, err = nil, pickleErr(nil, "og-rek panicked decoding the pickle: %v", r)
		}
	}()
	d := ogórek.NewDecoderWithConfig(bytes.NewReader(stream), &ogórek.DecoderConfig{
		StrictUnicode: true,
		// The guard replaced each LONG1 and LONG4 by a persistent
		// reference to the integer it decoded (and refused the
		// pickle's own persistent ids).
		PersistentLoad: func(ref ogórek.Ref) (any, error) {
			if i, ok := ref.Pid.(int64); ok && i >= 0 && i < int64(len(bigs)) {
				return bigs[i], nil
			}
			return nil, fmt.Errorf("persistent id %v that the guard did not write", ref.Pid)
		},
	})
	x, err = d.Decode()
	if err != nil {
		return nil, pickleErr(nil, "%s", strings.TrimPrefix(err.Error(), "pickle: "))
	}
	return x, nil
}

// pkPath is where in a value an error is: a chain of list indexes and dict
// keys, formatted only when an error is reported.
type pkPath struct {
	up    *pkPath
	index int // list or tuple index, when key is nil
	key   any // dict key (og-rek's value), or pkKeyMark for "a key of up"
}

// pkKeyMark as pkPath.key stands for "a key of the dict".
type pkKeyMark struct{}

func (p *pkPath) String() string {
	var segs []string
	for ; p != nil; p = p.up {
		switch k := p.key.(type) {
		case nil:
			segs = append(segs, "["+strconv.Itoa(p.index)+"]")
		case pkKeyMark:
			segs = append(segs, " (a key)")
		default:
			segs = append(segs, "["+pyRepr(k, 40)+"]")
		}
	}
	// segs is innermost first; deep paths keep their outer 4 and inner 8
	// segments.
	var b strings.Builder
	b.WriteString("value")
	for i := len(segs) - 1; i >= 0; i-- {
		if i == len(segs)-5 && len(segs) > 12 {
			fmt.Fprintf(&b, "...(%d levels)...", len(segs)-12)
			i = 7
		}
		b.WriteString(segs[i])
	}
	return b.String()
}

// pyRepr returns a short Python repr of og-rek's value x, at most about max
// characters.
func pyRepr(x any, max int) string {
	cut := func(s string) string {
		if len(s) > max {
			return s[:max] + "..."
		}
		return s
	}
	switch v := x.(type) {
	case ogórek.None, nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case *big.Int:
		return cut(v.String())
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return cut(strconv.Quote(v))
	case ogórek.ByteString:
		return cut(strconv.Quote(string(v)))
	case ogórek.Bytes:
		return "b" + cut(strconv.Quote(string(v)))
	}
	return pyTypeName(x)
}

// pyTypeName names the Python type of og-rek's value x.
func pyTypeName(x any) string {
	switch v := x.(type) {
	case ogórek.None, nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case ogórek.ByteString:
		return "Python 2 str"
	case ogórek.Bytes:
		return "bytes"
	case []any:
		return "list"
	case ogórek.Tuple:
		return "tuple"
	case map[any]any:
		return "dict"
	case ogórek.Class:
		return "global " + v.Module + "." + v.Name
	case ogórek.Call:
		return "call of " + v.Callable.Module + "." + v.Callable.Name
	}
	return fmt.Sprintf("%T", x)
}

// pyDescribe says what the pickle held: type and, for scalars, the value.
func pyDescribe(x any) string {
	switch v := x.(type) {
	case []any:
		return fmt.Sprintf("a list of %d items", len(v))
	case ogórek.Tuple:
		return fmt.Sprintf("a tuple of %d items", len(v))
	case map[any]any:
		return fmt.Sprintf("a dict of %d items", len(v))
	case ogórek.Class, ogórek.Call:
		return "a " + pyTypeName(x)
	case ogórek.None, nil:
		return "None"
	}
	return pyTypeName(x) + " " + pyRepr(x, 40)
}

// Reflect types the decoder and encoder compare with.
var (
	pkAnyType    = reflect.TypeFor[any]()
	pkBigPtrType = reflect.TypeFor[*big.Int]()
	pkBigType    = reflect.TypeFor[big.Int]()
	pkListType   = reflect.TypeFor[[]any]()
	pkBytesType  = reflect.TypeFor[[]byte]()
	pkStrMapType = reflect.TypeFor[map[string]any]()
	pkAnyMapType = reflect.TypeFor[map[any]any]()
)

// pkIdent is the identity of one og-rek object (a list, tuple, dict, bytes
// or big integer) decoded into one Go type.
type pkIdent struct {
	p unsafe.Pointer
	n int
	t reflect.Type
}

// pkDecoder converts og-rek's value into Go values of the requested types.
// It lives for one Decode call. An object that Python referenced from
// several places is converted once per Go type and shared, so that a small
// pickle referring many times to one object cannot expand into a huge Go
// value; an object met again while it is being converted is a cycle and an
// error.
type pkDecoder struct {
	done map[pkIdent]reflect.Value // converted objects
	busy map[pkIdent]bool          // objects being converted
}

// pkIdentOf returns the identity of x converted to t, when x is an object
// worth sharing.
func pkIdentOf(x any, t reflect.Type) (pkIdent, bool) {
	switch v := x.(type) {
	case map[any]any:
		return pkIdent{p: reflect.ValueOf(v).UnsafePointer(), t: t}, true
	case []any:
		if len(v) > 0 {
			return pkIdent{p: unsafe.Pointer(&v[0]), n: len(v), t: t}, true
		}
	case ogórek.Tuple:
		if len(v) > 0 {
			return pkIdent{p: unsafe.Pointer(&v[0]), n: len(v), t: t}, true
		}
	case ogórek.Bytes:
		if len(v) > 0 {
			return pkIdent{p: unsafe.Pointer(unsafe.StringData(string(v))), n: len(v), t: t}, true
		}
	case *big.Int:
		return pkIdent{p: unsafe.Pointer(v), t: t}, true
	}
	return pkIdent{}, false
}

// mismatch is the error for x not fitting t at path.
func (d *pkDecoder) mismatch(x any, t reflect.Type, path *pkPath, why string) error {
	if why != "" {
		why = " (" + why + ")"
	}
	return pickleErr(ErrPickleType, "%s: the pickle holds %s, which does not fit Go type %v%s", path, pyDescribe(x), t, why)
}

// value converts og-rek's value x into a Go value of type t (an invalid
// Value stands for the zero value). path is where x is, depth its nesting.
func (d *pkDecoder) value(x any, t reflect.Type, path *pkPath, depth int) (reflect.Value, error) {
	// Objects outside the mapping, whatever t is.
	switch v := x.(type) {
	case ogórek.Class:
		return reflect.Value{}, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a reference to Python's %s.%s, which PickleCodec does not decode", path, v.Module, v.Name)
	case ogórek.Call:
		if (v.Callable == ogórek.Class{Module: "builtins", Name: "bytes"} || v.Callable == ogórek.Class{Module: "__builtin__", Name: "bytes"}) && len(v.Args) == 0 {
			x = ogórek.Bytes("") // bytes(), how protocols 0 to 2 write b''
			break
		}
		return reflect.Value{}, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a call of Python's %s.%s with %d arguments that Python's own pickler never writes for bytes, which PickleCodec does not decode", path, v.Callable.Module, v.Callable.Name, len(v.Args))
	case ogórek.ByteString:
		if !pkASCII(string(v)) {
			return reflect.Value{}, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a Python 2 str with non-ASCII bytes, which Python 3's pickle.loads refuses by default too (encoding='ASCII')", path)
		}
		x = string(v)
	case string:
		if !utf8.ValidString(v) {
			return reflect.Value{}, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a str that is not valid UTF-8 (a lone surrogate), which no Go string holds", path)
		}
	case []any, ogórek.Tuple, map[any]any:
		if depth >= pickleMaxDepth {
			return reflect.Value{}, pickleErr(ErrPickleUnsupported, "%s: the pickle nests lists, tuples and dicts deeper than %d", path, pickleMaxDepth)
		}
	case nil, ogórek.None, bool, int64, *big.Int, float64, ogórek.Bytes:
	default:
		return reflect.Value{}, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a %s, which PickleCodec does not decode", path, pyTypeName(x))
	}
	if t.Kind() == reflect.Interface {
		return d.natural(x, t, path, depth)
	}
	if _, ok := x.(ogórek.None); ok {
		switch t.Kind() {
		case reflect.Pointer:
			return reflect.Zero(t), nil
		}
		return reflect.Value{}, d.mismatch(x, t, path, "only pointers and interfaces hold None")
	}
	id, shared := pkIdentOf(x, t)
	if shared {
		if v, ok := d.done[id]; ok {
			return v, nil
		}
		if d.busy[id] {
			return reflect.Value{}, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a recursive %s (it contains itself), which no Go value of type %v holds", path, pyTypeName(x), t)
		}
		if d.busy == nil {
			d.busy, d.done = make(map[pkIdent]bool), make(map[pkIdent]reflect.Value)
		}
		d.busy[id] = true
	}
	v, err := d.typed(x, t, path, depth)
	if shared {
		delete(d.busy, id)
		if err == nil {
			d.done[id] = v
		}
	}
	return v, err
}

// natural converts x to the natural Go value (see PickleCodec) and checks
// that it is assignable to the interface type t.
func (d *pkDecoder) natural(x any, t reflect.Type, path *pkPath, depth int) (reflect.Value, error) {
	var nt reflect.Type
	switch v := x.(type) {
	case ogórek.None:
		return reflect.Value{}, nil
	case *big.Int:
		if v.IsInt64() {
			return d.assignable(reflect.ValueOf(v.Int64()), x, t, path)
		}
		nt = pkBigPtrType
	case ogórek.Bytes:
		nt = pkBytesType
	case []any, ogórek.Tuple:
		nt = pkListType
	case map[any]any:
		nt = pkStrMapType
		for k := range v {
			if _, ok := k.(string); !ok {
				if _, ok := k.(ogórek.ByteString); !ok {
					nt = pkAnyMapType
					break
				}
			}
		}
	default: // bool, int64, float64, string
		return d.assignable(reflect.ValueOf(x), x, t, path)
	}
	v, err := d.value(x, nt, path, depth)
	if err != nil {
		return v, err
	}
	return d.assignable(v, x, t, path)
}

// assignable returns v when it can be assigned to t.
func (d *pkDecoder) assignable(v reflect.Value, x any, t reflect.Type, path *pkPath) (reflect.Value, error) {
	if !v.Type().AssignableTo(t) {
		return reflect.Value{}, d.mismatch(x, t, path, "its Go form "+v.Type().String()+" does not implement it")
	}
	return v, nil
}

// pkASCII reports whether s is ASCII.
func pkASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// pkBigOf returns the integer x as a *big.Int, or nil when x is not an int.
func pkBigOf(x any) *big.Int {
	switch v := x.(type) {
	case int64:
		return big.NewInt(v)
	case *big.Int:
		return v
	}
	return nil
}

// typed converts x (not None, not a Class or Call) to the concrete type t.
func (d *pkDecoder) typed(x any, t reflect.Type, path *pkPath, depth int) (reflect.Value, error) {
	out := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Bool:
		b, ok := x.(bool)
		if !ok {
			return out, d.mismatch(x, t, path, "")
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := pkBigOf(x)
		if n == nil {
			return out, d.mismatch(x, t, path, "")
		}
		if !n.IsInt64() || out.OverflowInt(n.Int64()) {
			return out, d.mismatch(x, t, path, "out of range")
		}
		out.SetInt(n.Int64())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := pkBigOf(x)
		if n == nil {
			return out, d.mismatch(x, t, path, "")
		}
		if !n.IsUint64() || out.OverflowUint(n.Uint64()) {
			return out, d.mismatch(x, t, path, "out of range")
		}
		out.SetUint(n.Uint64())
	case reflect.Float32, reflect.Float64:
		var f float64
		switch v := x.(type) {
		case float64:
			f = v
			if t.Kind() == reflect.Float32 && !math.IsNaN(f) && float64(float32(f)) != f {
				return out, d.mismatch(x, t, path, "not exact in float32")
			}
		case int64, *big.Int:
			bf := new(big.Float).SetInt(pkBigOf(x))
			var acc big.Accuracy
			if t.Kind() == reflect.Float32 {
				var f32 float32
				f32, acc = bf.Float32()
				f = float64(f32)
			} else {
				f, acc = bf.Float64()
			}
			if acc != big.Exact {
				return out, d.mismatch(x, t, path, "not exact in "+t.Kind().String())
			}
		default:
			return out, d.mismatch(x, t, path, "")
		}
		out.SetFloat(f)
	case reflect.String:
		s, ok := x.(string)
		if !ok {
			return out, d.mismatch(x, t, path, "")
		}
		out.SetString(s)
	case reflect.Pointer:
		if t == pkBigPtrType {
			n := pkBigOf(x)
			if n == nil {
				return out, d.mismatch(x, t, path, "")
			}
			return reflect.ValueOf(n), nil
		}
		if depth >= pickleMaxDepth {
			return out, pickleErr(ErrPickleUnsupported, "%s: Go type %v nests pointers deeper than %d", path, t, pickleMaxDepth)
		}
		ev, err := d.value(x, t.Elem(), path, depth+1)
		if err != nil {
			return out, err
		}
		p := reflect.New(t.Elem())
		if ev.IsValid() {
			p.Elem().Set(ev)
		}
		out.Set(p)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			b, ok := x.(ogórek.Bytes)
			if !ok {
				return out, d.mismatch(x, t, path, "")
			}
			return reflect.ValueOf([]byte(b)).Convert(t), nil
		}
		var items []any
		switch v := x.(type) {
		case []any:
			items = v
		case ogórek.Tuple:
			items = v
		default:
			return out, d.mismatch(x, t, path, "")
		}
		out = reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			ev, err := d.value(item, t.Elem(), &pkPath{up: path, index: i}, depth+1)
			if err != nil {
				return out, err
			}
			if ev.IsValid() {
				out.Index(i).Set(ev)
			}
		}
	case reflect.Map:
		m, ok := x.(map[any]any)
		if !ok {
			return out, d.mismatch(x, t, path, "")
		}
		return d.dict(m, t, path, depth)
	default:
		return out, pickleErr(ErrPickleUnsupported, "%s: Go type %v is not one PickleCodec decodes into (bool, numbers, string, []byte, *big.Int, slices, maps, pointers and interfaces are)", path, t)
	}
	return out, nil
}

// dict converts the dict m to the map type t.
func (d *pkDecoder) dict(m map[any]any, t reflect.Type, path *pkPath, depth int) (reflect.Value, error) {
	out := reflect.MakeMapWithSize(t, len(m))
	var canon map[any]any // for interface keys: Python-equal keys seen
	if t.Key().Kind() == reflect.Interface {
		canon = make(map[any]any, len(m))
	}
	for k, v := range m {
		kp := &pkPath{up: path, key: pkKeyMark{}}
		if _, ok := k.(ogórek.Bytes); ok {
			// The guard refuses bytes keys; og-rek's REDUCE results can
			// still be keys only through hostile pickles.
			return out, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a dict with a bytes key, which PickleCodec does not decode", kp)
		}
		if n, ok := k.(*big.Int); ok && t.Key().Kind() == reflect.Interface {
			if !n.IsInt64() {
				return out, pickleErr(ErrPickleUnsupported, "%s: the pickle holds a dict key int %s beyond 64 bits, which no comparable Go value holds", kp, pyRepr(k, 40))
			}
			k = n.Int64()
		}
		kv, err := d.value(k, t.Key(), kp, depth+1)
		if err != nil {
			return out, err
		}
		if !kv.IsValid() {
			kv = reflect.Zero(t.Key())
		}
		if canon != nil {
			c := pkCanonKey(kv.Interface())
			if other, dup := canon[c]; dup {
				return out, pickleErr(nil, "%s: the dict holds keys %s and %s, which are one key in Python", path, pyRepr(other, 40), pyRepr(k, 40))
			}
			canon[c] = k
		}
		vv, err := d.value(v, t.Elem(), &pkPath{up: path, key: k}, depth+1)
		if err != nil {
			return out, err
		}
		if !vv.IsValid() {
			vv = reflect.Zero(t.Elem())
		}
		out.SetMapIndex(kv, vv)
	}
	if out.Len() != len(m) {
		return out, pickleErr(nil, "%s: the dict holds %d keys that are %d distinct keys of Go type %v", path, len(m), out.Len(), t.Key())
	}
	return out, nil
}

// pkCanonKey returns a comparable stand-in for the Go key k such that keys
// Python treats as one dict key (True, 1 and 1.0) have the same stand-in.
// NaN stands for itself: every NaN is a different key in Go and in Python.
func pkCanonKey(k any) any {
	switch v := k.(type) {
	case bool:
		if v {
			return int64(1)
		}
		return int64(0)
	case int, int8, int16, int32, int64:
		return reflect.ValueOf(v).Int()
	case uint, uint8, uint16, uint32, uint64, uintptr:
		u := reflect.ValueOf(v).Uint()
		if u <= math.MaxInt64 {
			return int64(u)
		}
		return u
	case float32:
		return pkCanonKey(float64(v))
	case float64:
		if v == math.Trunc(v) && v >= -(1<<63) && v < 1<<63 {
			return int64(v)
		}
		if v == math.Trunc(v) && !math.IsInf(v, 0) {
			u := uint64(v)
			if v >= 0 && v < 1<<64 && float64(u) == v {
				return u
			}
			return new(big.Float).SetFloat64(v).Text('f', 0)
		}
		return v
	case nil:
		return nil
	}
	return k
}

// pkEncIdent is the identity of a Go map, slice or pointer being encoded.
type pkEncIdent struct {
	p unsafe.Pointer
	n int
	t reflect.Type
}

// pkEncoder converts a Go value into the types og-rek writes as the mapped
// Python types: ogórek.None, bool, int64, uint64, *big.Int, float64, string,
// ogórek.Bytes, []any and map[any]any. It lives for one Encode call.
type pkEncoder struct {
	busy map[pkEncIdent]bool // maps, slices and pointers being converted
}

// enter marks the container rv (of non-zero identity) as being converted,
// failing on a cycle; leave undoes it.
func (e *pkEncoder) enter(rv reflect.Value, path *pkPath) (pkEncIdent, error) {
	id := pkEncIdent{p: rv.UnsafePointer(), t: rv.Type()}
	if rv.Kind() == reflect.Slice {
		id.n = rv.Len()
	}
	if e.busy[id] {
		return id, pickleEncErr("%s: the Go value of type %v contains itself, which a pickle written without memo cannot hold", path, rv.Type())
	}
	if e.busy == nil {
		e.busy = make(map[pkEncIdent]bool)
	}
	e.busy[id] = true
	return id, nil
}

// value converts rv.
func (e *pkEncoder) value(rv reflect.Value, path *pkPath, depth int) (any, error) {
	if !rv.IsValid() {
		return ogórek.None{}, nil
	}
	t := rv.Type()
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if depth >= pickleMaxDepth && !(t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8) {
			return nil, pickleEncErr("%s: the Go value nests slices, maps and pointers deeper than %d", path, pickleMaxDepth)
		}
	}
	switch t.Kind() {
	case reflect.Interface:
		if rv.IsNil() {
			return ogórek.None{}, nil
		}
		return e.value(rv.Elem(), path, depth)
	case reflect.Pointer:
		if rv.IsNil() {
			return ogórek.None{}, nil
		}
		if t == pkBigPtrType {
			return pkBigValue(rv.Interface().(*big.Int), path)
		}
		id, err := e.enter(rv, path)
		if err != nil {
			return nil, err
		}
		defer delete(e.busy, id)
		return e.value(rv.Elem(), path, depth+1)
	case reflect.Struct:
		if t == pkBigType {
			n := rv.Interface().(big.Int)
			return pkBigValue(&n, path)
		}
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := rv.Uint()
		if u <= math.MaxInt64 {
			return int64(u), nil
		}
		return u, nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		s := rv.String()
		if !utf8.ValidString(s) {
			return nil, pickleEncErr("%s: Go string %s is not valid UTF-8, which Python's str cannot hold; store bytes as []byte", path, pkGoQuote(s))
		}
		return s, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return ogórek.Bytes(rv.Bytes()), nil
		}
		items := make([]any, rv.Len())
		if rv.Len() > 0 {
			id, err := e.enter(rv, path)
			if err != nil {
				return nil, err
			}
			defer delete(e.busy, id)
		}
		for i := range items {
			x, err := e.value(rv.Index(i), &pkPath{up: path, index: i}, depth+1)
			if err != nil {
				return nil, err
			}
			items[i] = x
		}
		return items, nil
	case reflect.Map:
		return e.dict(rv, path, depth)
	}
	return nil, pickleEncErr("%s: Go type %v has no pickle form in PickleCodec (bool, numbers, string, []byte, *big.Int, slices, maps, pointers and interfaces have)", path, t)
}

// dict converts the map rv.
func (e *pkEncoder) dict(rv reflect.Value, path *pkPath, depth int) (any, error) {
	m := make(map[any]any, rv.Len())
	if rv.Len() == 0 {
		return m, nil
	}
	id, err := e.enter(rv, path)
	if err != nil {
		return nil, err
	}
	defer delete(e.busy, id)
	var canon map[any]any // for interface keys: Python-equal keys seen
	if rv.Type().Key().Kind() == reflect.Interface {
		canon = make(map[any]any, rv.Len())
	}
	it := rv.MapRange()
	for it.Next() {
		k, err := e.key(it.Key(), path)
		if err != nil {
			return nil, err
		}
		if canon != nil {
			c := pkCanonKey(k)
			if _, ok := k.(ogórek.None); ok {
				c = nil
			}
			if other, dup := canon[c]; dup {
				return nil, pickleEncErr("%s: Go map keys %#v and %#v are one key in Python, where the dict would keep only one", path, other, it.Key().Interface())
			}
			canon[c] = it.Key().Interface()
		}
		v, err := e.value(it.Value(), &pkPath{up: path, key: k}, depth+1)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// key converts a map key: str, int, float, bool or None in Python.
func (e *pkEncoder) key(rv reflect.Value, path *pkPath) (any, error) {
	kp := &pkPath{up: path, key: pkKeyMark{}}
	if rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return ogórek.None{}, nil
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return e.value(rv, kp, 0)
	}
	return nil, pickleEncErr("%s: Go map key of type %v has no pickle form in PickleCodec (string, bool, numbers and nil keys have)", kp, rv.Type())
}

// pkBigValue converts the integer n: int64 when it fits, else n itself,
// which og-rek writes in text, refused beyond the digits Python reads.
func pkBigValue(n *big.Int, path *pkPath) (any, error) {
	if n.IsInt64() {
		return n.Int64(), nil
	}
	// Integers of more than 14285 bits have more than 4300 digits.
	digits := pickleMaxDigits + 1
	if n.BitLen() <= 14285 {
		digits = len(n.Text(10))
		if n.Sign() < 0 {
			digits--
		}
	}
	if digits > pickleMaxDigits {
		return nil, pickleEncErr("%s: Go integer of %d bits has more than %d decimal digits, which og-rek writes in text and Python 3.11 and later refuse to read", path, n.BitLen(), pickleMaxDigits)
	}
	return n, nil
}

// pkGoQuote returns s quoted for an error, cut to about 40 bytes.
func pkGoQuote(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "..."
	}
	return strconv.Quote(s)
}
