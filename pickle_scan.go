package whycache

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// The pickle guard. pickleScan walks a pickle opcode by opcode the way
// Python's Unpickler does, tracking what kind of object each stack slot and
// memo entry holds but building no values, and refuses every pickle that
// PickleCodec must not decode or that og-rek (which builds the values after
// the guard passed) would decode differently from Python:
//
//   - opcodes outside the set Python writes for None, bool, int, float, str,
//     bytes, list, tuple and dict (sets, class instances, persistent ids,
//     out-of-band buffers, extension codes: ErrPickleUnsupported);
//   - GLOBAL and STACK_GLOBAL of anything but the three harmless names Python
//     itself writes for bytes at protocols 0 to 2 (_codecs.encode,
//     __builtin__.bytes, builtins.bytes), and REDUCE of anything but those;
//   - a list that is reachable from two places (shared or recursive) and
//     grown after the second reference was made: og-rek's memo keeps the
//     slice header it saw when the list was memoized, so such a list would
//     decode as its old, shorter self;
//   - text INT, LONG and FLOAT arguments Python's int() and float() would not
//     read the same way, and text integers beyond Python's 4300-digit limit;
//   - truncated arguments, lengths beyond the input, stack underflow, marks
//     left open, memo references to nothing, anything after STOP, and a STOP
//     that does not leave exactly one value (ErrCorrupt).
//
// LONG1 and LONG4 are decoded here, not by og-rek (which misreads LONG1 of
// 128 bytes or more and has no LONG4): each is replaced in the stream given
// to og-rek by BININT <index> BINPERSID, a persistent reference that the
// decoder's PersistentLoad resolves to bigs[index]. Genuine persistent ids
// are refused above, so no other BINPERSID reaches og-rek.

// pickleMaxDigits is Python's default limit on the digits of an integer
// read from text (sys.int_info.default_max_str_digits, Python 3.11 and
// later): text INT and LONG opcodes beyond it are refused, as Python
// refuses them, and Encode refuses integers that og-rek would write in text
// beyond it.
const pickleMaxDigits = 4300

// pkKind is what a stack slot or memo entry of the guard holds.
type pkKind uint8

const (
	pkMark    pkKind = iota // MARK
	pkNone                  // None
	pkBool                  // bool
	pkInt                   // int
	pkFloat                 // float
	pkStr                   // str (Python 2 unicode)
	pkByteStr               // Python 2 str (a byte string)
	pkBytes                 // bytes, or the result of REDUCE of an allowed global
	pkList                  // list
	pkTuple                 // tuple
	pkDict                  // dict
	pkGlobal                // an allowed global name (a callable)
)

// pkKindNames names each kind in errors, the way Python names the type.
var pkKindNames = [...]string{
	pkMark: "MARK", pkNone: "None", pkBool: "bool", pkInt: "int", pkFloat: "float",
	pkStr: "str", pkByteStr: "Python 2 str", pkBytes: "bytes", pkList: "list",
	pkTuple: "tuple", pkDict: "dict", pkGlobal: "global name",
}

func (k pkKind) String() string { return pkKindNames[k] }

// pkSlot is one stack slot or memo entry of the guard.
type pkSlot struct {
	kind pkKind
	// list and ver, for pkList: the list's index in pkScan.lists and the
	// list's version when this reference was made.
	list, ver int
	// a, b, for pkStr read from a binary opcode: the text's bounds in the
	// input (STACK_GLOBAL names its module and name with them); a < 0
	// otherwise.
	a, b int
}

// pkListInfo is the guard's record of one list object.
type pkListInfo struct {
	ver    int  // number of APPEND and APPENDS applied to the list
	shared bool // a second reference to the list exists (DUP or GET)
}

// pkScan is the state of one guard walk. It lives for one Decode call and
// is used by one goroutine.
//
// Invariants between opcodes: every pkList slot on the stack has ver equal
// to its list's ver (only memo entries go stale), and marks holds the
// stack indices of the pkMark slots, ascending.
type pkScan struct {
	data  []byte
	pos   int      // offset of the next unread byte of data
	op    int      // offset of the opcode being walked, for errors
	stack []pkSlot // the Unpickler's stack, marks included
	marks []int    // indices in stack of the pkMark slots
	memo  map[uint32]pkSlot
	lists []pkListInfo

	// out is the stream to hand to og-rek: nil while it equals data, else
	// data up to flushed with LONG1 and LONG4 replaced; bigs holds the
	// integers those replacements refer to, by index.
	out     []byte
	flushed int
	bigs    []*big.Int
}

// pickleScan runs the guard over data. It returns the stream og-rek is to
// decode and the integers its persistent references stand for, or an error
// (*pickleError) naming the byte offset of the opcode at fault.
func pickleScan(data []byte) (stream []byte, bigs []*big.Int, err error) {
	s := newPkScan(data)
	if err := s.run(); err != nil {
		return nil, nil, err
	}
	if s.out == nil {
		return data, nil, nil
	}
	return append(s.out, data[s.flushed:]...), s.bigs, nil
}

// newPkScan returns a guard for data, with room for the stack and memo of
// a small pickle (Python memoizes about one object in every 4 to 8 bytes).
func newPkScan(data []byte) *pkScan {
	return &pkScan{
		data:  data,
		stack: make([]pkSlot, 0, 16),
		memo:  make(map[uint32]pkSlot, min(len(data)/6, 64)),
	}
}

// corrupt returns an ErrCorrupt error about the current opcode.
func (s *pkScan) corrupt(format string, args ...any) error {
	return pickleErr(nil, "byte %d: %s", s.op, fmt.Sprintf(format, args...))
}

// unsupported returns an ErrPickleUnsupported error about the current
// opcode.
func (s *pkScan) unsupported(format string, args ...any) error {
	return pickleErr(ErrPickleUnsupported, "byte %d: %s", s.op, fmt.Sprintf(format, args...))
}

// read returns the next n bytes of the opcode's argument.
func (s *pkScan) read(n int) ([]byte, error) {
	if n < 0 || n > len(s.data)-s.pos {
		return nil, s.corrupt("opcode %#02x needs %d bytes, %d are left", s.data[s.op], n, len(s.data)-s.pos)
	}
	b := s.data[s.pos : s.pos+n]
	s.pos += n
	return b, nil
}

// readLine returns the next line of a text argument, without its newline.
func (s *pkScan) readLine() ([]byte, error) {
	for i := s.pos; i < len(s.data); i++ {
		if s.data[i] == '\n' {
			line := s.data[s.pos:i]
			s.pos = i + 1
			return line, nil
		}
	}
	return nil, s.corrupt("opcode %q: text argument has no end of line", s.data[s.op])
}

// readLen reads a little-endian length of size 1, 4 or 8 bytes and checks
// that that many bytes follow.
func (s *pkScan) readLen(size int) (int, error) {
	b, err := s.read(size)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch size {
	case 1:
		n = uint64(b[0])
	case 4:
		n = uint64(binary.LittleEndian.Uint32(b))
	default:
		n = binary.LittleEndian.Uint64(b)
	}
	if n > uint64(len(s.data)-s.pos) {
		return 0, s.corrupt("opcode %#02x: length %d is beyond the %d bytes left", s.data[s.op], n, len(s.data)-s.pos)
	}
	return int(n), nil
}

// push pushes a slot.
func (s *pkScan) push(sl pkSlot) { s.stack = append(s.stack, sl) }

// pushKind pushes a slot of a kind that carries nothing.
func (s *pkScan) pushKind(k pkKind) { s.stack = append(s.stack, pkSlot{kind: k, a: -1}) }

// fence is the index of the first slot above the topmost mark.
func (s *pkScan) fence() int {
	if len(s.marks) == 0 {
		return 0
	}
	return s.marks[len(s.marks)-1] + 1
}

// top returns the topmost n slots above the topmost mark, as Python's
// Unpickler sees them (a mark is never an operand).
func (s *pkScan) top(n int) ([]pkSlot, error) {
	if len(s.stack)-s.fence() < n {
		return nil, s.corrupt("opcode %q: stack underflow", s.data[s.op])
	}
	return s.stack[len(s.stack)-n:], nil
}

// popMark removes the topmost mark and returns the slots above it.
func (s *pkScan) popMark() ([]pkSlot, error) {
	if len(s.marks) == 0 {
		return nil, s.corrupt("opcode %q: no MARK on the stack", s.data[s.op])
	}
	k := s.marks[len(s.marks)-1]
	s.marks = s.marks[:len(s.marks)-1]
	items := s.stack[k+1:]
	s.stack = s.stack[:k]
	return items, nil
}

// newList pushes a new list.
func (s *pkScan) newList() {
	s.lists = append(s.lists, pkListInfo{})
	s.push(pkSlot{kind: pkList, list: len(s.lists) - 1, a: -1})
}

// grow records APPEND or APPENDS into the list in slot sl.
func (s *pkScan) grow(sl *pkSlot) error {
	if sl.kind != pkList {
		return s.corrupt("opcode %q: appends to a %s, not a list", s.data[s.op], sl.kind)
	}
	l := &s.lists[sl.list]
	if l.shared {
		return s.unsupported("the pickle holds a list that is referenced from two places (a shared or recursive list), which PickleCodec cannot rebuild")
	}
	l.ver++
	sl.ver = l.ver
	return nil
}

// key checks that a dict key is of a kind PickleCodec maps.
func (s *pkScan) key(sl pkSlot) error {
	switch sl.kind {
	case pkNone, pkBool, pkInt, pkFloat, pkStr, pkByteStr:
		return nil
	case pkMark:
		return s.corrupt("opcode %q: MARK used as a dict key", s.data[s.op])
	}
	return s.unsupported("the pickle holds a dict with a key of Python type %s; PickleCodec maps dict keys of type str, int, float, bool and None", sl.kind)
}

// memoPut stores the top of the stack under idx.
func (s *pkScan) memoPut(idx uint32) error {
	t, err := s.top(1)
	if err != nil {
		return err
	}
	s.memo[idx] = t[0]
	return nil
}

// memoGet pushes the memo entry idx.
func (s *pkScan) memoGet(idx uint32) error {
	sl, ok := s.memo[idx]
	if !ok {
		return s.corrupt("memo entry %d was never stored", idx)
	}
	if sl.kind == pkList {
		l := &s.lists[sl.list]
		if sl.ver != l.ver {
			return s.unsupported("the pickle holds a list that is referenced from two places (a shared or recursive list), which PickleCodec cannot rebuild")
		}
		l.shared = true
	}
	s.push(sl)
	return nil
}

// textIndex parses the decimal memo index of PUT and GET, which Python reads
// with int(): only canonical decimal is accepted, so that og-rek (which keys
// its memo by the text) and Python agree.
func (s *pkScan) textIndex(line []byte) (uint32, error) {
	if !pkDecimal(line, false) || len(line) > 10 {
		return 0, s.corrupt("memo index %q is not a decimal number", line)
	}
	var n uint64
	for _, c := range line {
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxUint32 {
		return 0, s.corrupt("memo index %s is beyond 32 bits", line)
	}
	return uint32(n), nil
}

// pkDecimal reports whether b is a canonical decimal integer: an optional
// minus sign (when signed), then 0 or digits not starting with 0.
func pkDecimal(b []byte, signed bool) bool {
	if signed && len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// pkFloatText reports whether b is a float in the forms Python's repr and
// float() share: [-+]digits[.digits][e[-+]digits], .digits, or nan, inf,
// infinity in any case with a sign.
func pkFloatText(b []byte) bool {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	switch string(pkLower(b)) {
	case "nan", "inf", "infinity":
		return true
	}
	digits := func() int {
		n := 0
		for len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
			b, n = b[1:], n+1
		}
		return n
	}
	n := digits()
	if len(b) > 0 && b[0] == '.' {
		b = b[1:]
		n += digits()
	}
	if n == 0 {
		return false
	}
	if len(b) > 0 && (b[0] == 'e' || b[0] == 'E') {
		b = b[1:]
		if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
			b = b[1:]
		}
		if digits() == 0 {
			return false
		}
	}
	return len(b) == 0
}

// pkLower returns b in lower case when it is short ASCII, for pkFloatText.
func pkLower(b []byte) []byte {
	if len(b) > 8 {
		return nil
	}
	l := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		l[i] = c
	}
	return l
}

// pkGlobalNames are the only globals a pickle may name: those Python writes
// for bytes at protocols 0 to 2. og-rek turns _codecs.encode(str, 'latin1')
// into bytes itself; the decoder turns bytes() into empty bytes. Nothing is
// ever imported or called.
var pkGlobalNames = map[[2]string]bool{
	{"_codecs", "encode"}:    true,
	{"__builtin__", "bytes"}: true,
	{"builtins", "bytes"}:    true,
}

// pkGlobalWhat describes well-known refused globals in errors.
var pkGlobalWhat = map[[2]string]string{
	{"builtins", "set"}: "a set", {"__builtin__", "set"}: "a set",
	{"builtins", "frozenset"}: "a frozenset", {"__builtin__", "frozenset"}: "a frozenset",
	{"builtins", "bytearray"}: "a bytearray", {"__builtin__", "bytearray"}: "a bytearray",
	{"builtins", "complex"}: "a complex number", {"__builtin__", "complex"}: "a complex number",
}

// global pushes the global module.name, refusing all but pkGlobalNames.
func (s *pkScan) global(module, name string) error {
	key := [2]string{module, name}
	if pkGlobalNames[key] {
		s.pushKind(pkGlobal)
		return nil
	}
	what := "an object of Python class or function " + pkQuote(module) + "." + pkQuote(name)
	if w, ok := pkGlobalWhat[key]; ok {
		what = w + " (" + module + "." + name + ")"
	}
	return s.unsupported("the pickle holds %s, which PickleCodec does not decode: Python would import and call it; only None, bool, int, float, str, bytes, list, tuple and dict are decoded", what)
}

// pkQuote returns s for an error message, quoted when it is not a plain
// dotted name.
func pkQuote(s string) string {
	for _, c := range s {
		if !(c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return fmt.Sprintf("%q", s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// long records the little-endian two's complement integer b (the argument
// of LONG1 or LONG4, from offset s.op to s.pos) and replaces the opcode in
// the output by a persistent reference to it.
func (s *pkScan) long(b []byte) {
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if len(b) > 0 && b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	idx := len(s.bigs)
	s.bigs = append(s.bigs, n)
	s.out = append(s.out, s.data[s.flushed:s.op]...)
	s.out = append(s.out, 'J', byte(idx), byte(idx>>8), byte(idx>>16), byte(idx>>24), 'Q')
	s.flushed = s.pos
	s.pushKind(pkInt)
}

// run walks the whole pickle.
func (s *pkScan) run() error {
	for {
		done, err := s.next()
		if done || err != nil {
			return err
		}
	}
}

// next walks one opcode and reports whether it was the final STOP.
func (s *pkScan) next() (done bool, err error) {
	if s.pos >= len(s.data) {
		if s.pos == 0 {
			return false, pickleErr(nil, "empty input")
		}
		return false, pickleErr(nil, "byte %d: input ends before STOP", s.pos)
	}
	s.op = s.pos
	op := s.data[s.pos]
	s.pos++
	if op != '.' {
		return false, s.step(op)
	}
	// STOP
	if len(s.marks) > 0 || len(s.stack) != 1 {
		return false, s.corrupt("STOP leaves %d values and %d marks on the stack, want one value", len(s.stack)-len(s.marks), len(s.marks))
	}
	if s.pos != len(s.data) {
		return false, s.corrupt("%d bytes follow STOP", len(s.data)-s.pos)
	}
	if s.stack[0].kind == pkGlobal {
		return false, s.unsupported("the pickle is a bare global name, which PickleCodec does not decode")
	}
	return true, nil
}

// verify checks the invariants of pkScan (between opcodes).
func (s *pkScan) verify() error {
	m := 0
	for i, sl := range s.stack {
		switch sl.kind {
		case pkMark:
			if m >= len(s.marks) || s.marks[m] != i {
				return fmt.Errorf("stack slot %d is a mark that marks does not list (%v)", i, s.marks)
			}
			m++
		case pkList:
			if sl.list >= len(s.lists) || sl.ver != s.lists[sl.list].ver {
				return fmt.Errorf("stack slot %d holds list %d at version %d, the list is at %+v", i, sl.list, sl.ver, s.lists[sl.list])
			}
		case pkStr:
			if sl.a >= 0 && (sl.a > sl.b || sl.b > len(s.data)) {
				return fmt.Errorf("stack slot %d: str bounds %d:%d beyond %d bytes", i, sl.a, sl.b, len(s.data))
			}
		}
	}
	if m != len(s.marks) {
		return fmt.Errorf("marks lists %d marks, the stack holds %d", len(s.marks), m)
	}
	if s.flushed > s.pos || (s.out == nil) != (len(s.bigs) == 0) {
		return fmt.Errorf("output flushed to %d at position %d with %d integers replaced", s.flushed, s.pos, len(s.bigs))
	}
	return nil
}

// step walks one opcode other than STOP.
func (s *pkScan) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		b, err := s.read(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return s.unsupported("pickle protocol %d is newer than 5", b[0])
		}
	case 0x95: // FRAME
		if _, err := s.readLen(8); err != nil {
			return err
		}
	case '(': // MARK
		s.marks = append(s.marks, len(s.stack))
		s.push(pkSlot{kind: pkMark, a: -1})
	case '0': // POP
		if len(s.stack) == 0 {
			return s.corrupt("POP on an empty stack")
		}
		if s.stack[len(s.stack)-1].kind == pkMark {
			s.marks = s.marks[:len(s.marks)-1]
		}
		s.stack = s.stack[:len(s.stack)-1]
	case '2': // DUP
		t, err := s.top(1)
		if err != nil {
			return err
		}
		sl := t[0]
		if sl.kind == pkList {
			s.lists[sl.list].shared = true
		}
		s.push(sl)
	case 'N':
		s.pushKind(pkNone)
	case 0x88, 0x89: // NEWTRUE, NEWFALSE
		s.pushKind(pkBool)
	case 'K', 'M', 'J': // BININT1, BININT2, BININT
		n := 4
		switch op {
		case 'K':
			n = 1
		case 'M':
			n = 2
		}
		if _, err := s.read(n); err != nil {
			return err
		}
		s.pushKind(pkInt)
	case 0x8a, 0x8b: // LONG1, LONG4
		size := 1
		if op == 0x8b {
			size = 4
		}
		n, err := s.readLen(size)
		if err != nil {
			return err
		}
		if op == 0x8b && n > math.MaxInt32 {
			return s.corrupt("LONG4 length %d is negative as Python reads it", n)
		}
		b, _ := s.read(n)
		s.long(b)
	case 'I', 'L': // INT, LONG (text)
		line, err := s.readLine()
		if err != nil {
			return err
		}
		if op == 'I' && (string(line) == "00" || string(line) == "01") {
			s.pushKind(pkBool)
			break
		}
		if op == 'L' {
			// Python writes LONG with a trailing L, and og-rek requires it.
			if len(line) == 0 || line[len(line)-1] != 'L' {
				return s.corrupt("LONG argument %q does not end in L", line)
			}
			line = line[:len(line)-1]
		}
		if !pkDecimal(line, true) {
			return s.corrupt("%q is not a decimal integer", line)
		}
		digits := len(line)
		if line[0] == '-' {
			digits--
		}
		if digits > pickleMaxDigits {
			return s.unsupported("a text integer of %d digits is beyond Python's limit of %d", digits, pickleMaxDigits)
		}
		s.pushKind(pkInt)
	case 'G': // BINFLOAT
		if _, err := s.read(8); err != nil {
			return err
		}
		s.pushKind(pkFloat)
	case 'F': // FLOAT (text)
		line, err := s.readLine()
		if err != nil {
			return err
		}
		if !pkFloatText(line) {
			return s.corrupt("%q is not a float", line)
		}
		s.pushKind(pkFloat)
	case 'X', 0x8c: // BINUNICODE, SHORT_BINUNICODE
		size := 4
		if op == 0x8c {
			size = 1
		}
		n, err := s.readLen(size)
		if err != nil {
			return err
		}
		a := s.pos
		b, _ := s.read(n)
		if !utf8.Valid(b) {
			return pkInvalidUTF8(s, b)
		}
		s.push(pkSlot{kind: pkStr, a: a, b: s.pos})
	case 'V': // UNICODE (raw-unicode-escape text)
		line, err := s.readLine()
		if err != nil {
			return err
		}
		if pkEscapedSurrogate(line) {
			return s.unsupported("the pickle holds a str with a lone surrogate (U+D800 to U+DFFF), which no valid UTF-8 Go string can hold")
		}
		s.pushKind(pkStr)
	case 'S': // STRING (quoted text)
		if _, err := s.readLine(); err != nil {
			return err
		}
		s.pushKind(pkByteStr)
	case 'T', 'U': // BINSTRING, SHORT_BINSTRING
		size := 4
		if op == 'U' {
			size = 1
		}
		n, err := s.readLen(size)
		if err != nil {
			return err
		}
		if op == 'T' && n > math.MaxInt32 {
			return s.corrupt("BINSTRING length %d is negative as Python reads it", n)
		}
		s.read(n)
		s.pushKind(pkByteStr)
	case 'B', 'C': // BINBYTES, SHORT_BINBYTES
		size := 4
		if op == 'C' {
			size = 1
		}
		n, err := s.readLen(size)
		if err != nil {
			return err
		}
		s.read(n)
		s.pushKind(pkBytes)
	case ']': // EMPTY_LIST
		s.newList()
	case 'l': // LIST
		if _, err := s.popMark(); err != nil {
			return err
		}
		s.newList()
	case ')': // EMPTY_TUPLE
		s.pushKind(pkTuple)
	case 't': // TUPLE
		if _, err := s.popMark(); err != nil {
			return err
		}
		s.pushKind(pkTuple)
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		n := int(op - 0x84)
		if _, err := s.top(n); err != nil {
			return err
		}
		s.stack = s.stack[:len(s.stack)-n]
		s.pushKind(pkTuple)
	case '}': // EMPTY_DICT
		s.pushKind(pkDict)
	case 'd': // DICT
		items, err := s.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return s.corrupt("DICT with an odd number of items")
		}
		for i := 0; i < len(items); i += 2 {
			if err := s.key(items[i]); err != nil {
				return err
			}
		}
		s.pushKind(pkDict)
	case 'a': // APPEND
		t, err := s.top(2)
		if err != nil {
			return err
		}
		if err := s.grow(&t[0]); err != nil {
			return err
		}
		s.stack = s.stack[:len(s.stack)-1]
	case 'e': // APPENDS
		if _, err := s.popMark(); err != nil {
			return err
		}
		t, err := s.top(1)
		if err != nil {
			return err
		}
		if err := s.grow(&t[0]); err != nil {
			return err
		}
	case 's': // SETITEM
		t, err := s.top(3)
		if err != nil {
			return err
		}
		if t[0].kind != pkDict {
			return s.corrupt("SETITEM on a %s, not a dict", t[0].kind)
		}
		if err := s.key(t[1]); err != nil {
			return err
		}
		s.stack = s.stack[:len(s.stack)-2]
	case 'u': // SETITEMS
		items, err := s.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return s.corrupt("SETITEMS with an odd number of items")
		}
		t, err := s.top(1)
		if err != nil {
			return err
		}
		if t[0].kind != pkDict {
			return s.corrupt("SETITEMS on a %s, not a dict", t[0].kind)
		}
		for i := 0; i < len(items); i += 2 {
			if err := s.key(items[i]); err != nil {
				return err
			}
		}
	case 'p', 'q', 'r': // PUT, BINPUT, LONG_BINPUT
		idx, err := s.memoArg(op)
		if err != nil {
			return err
		}
		return s.memoPut(idx)
	case 0x94: // MEMOIZE
		return s.memoPut(uint32(len(s.memo)))
	case 'g', 'h', 'j': // GET, BINGET, LONG_BINGET
		idx, err := s.memoArg(op)
		if err != nil {
			return err
		}
		return s.memoGet(idx)
	case 'c': // GLOBAL
		module, err := s.readLine()
		if err != nil {
			return err
		}
		name, err := s.readLine()
		if err != nil {
			return err
		}
		return s.global(string(module), string(name))
	case 0x93: // STACK_GLOBAL
		t, err := s.top(2)
		if err != nil {
			return err
		}
		if t[0].kind != pkStr || t[1].kind != pkStr {
			return s.corrupt("STACK_GLOBAL of a %s and a %s, not two str", t[0].kind, t[1].kind)
		}
		if t[0].a < 0 || t[1].a < 0 {
			return s.unsupported("the pickle holds an object of a Python class named by escaped text, which PickleCodec does not decode")
		}
		module, name := string(s.data[t[0].a:t[0].b]), string(s.data[t[1].a:t[1].b])
		s.stack = s.stack[:len(s.stack)-2]
		return s.global(module, name)
	case 'R': // REDUCE
		t, err := s.top(2)
		if err != nil {
			return err
		}
		if t[0].kind != pkGlobal || t[1].kind != pkTuple {
			return s.corrupt("REDUCE of a %s with a %s, not of a global with a tuple", t[0].kind, t[1].kind)
		}
		s.stack = s.stack[:len(s.stack)-2]
		s.pushKind(pkBytes)
	case 0x8f, 0x90:
		return s.unsupported("the pickle holds a set, which PickleCodec does not decode")
	case 0x91:
		return s.unsupported("the pickle holds a frozenset, which PickleCodec does not decode")
	case 0x96:
		return s.unsupported("the pickle holds a bytearray, which PickleCodec does not decode")
	case 0x97, 0x98:
		return s.unsupported("the pickle refers to out-of-band buffers (protocol 5 buffer_callback), which PickleCodec does not decode")
	case 'P', 'Q':
		return s.unsupported("the pickle holds a persistent id, which Python's pickle.loads refuses too")
	case 0x82, 0x83, 0x84:
		return s.unsupported("the pickle names a Python class through the copyreg extension registry, which PickleCodec does not decode")
	case 'b', 'i', 'o', 0x81, 0x92:
		return s.unsupported("the pickle builds an instance of a Python class (opcode %q), which PickleCodec does not decode", op)
	case 0x8d, 0x8e:
		return s.unsupported("the pickle holds a str or bytes of 4 GiB or more (opcode %#02x)", op)
	case '1':
		return s.unsupported("the pickle holds a recursive tuple (POP_MARK), which PickleCodec cannot rebuild")
	default:
		return s.corrupt("unknown opcode %#02x", op)
	}
	return nil
}

// pkInvalidUTF8 is the error for a str argument that is not valid UTF-8:
// corrupt, unless Python accepts it as a lone surrogate (UTF-8 with
// surrogatepass), which no Go string can hold.
func pkInvalidUTF8(s *pkScan, b []byte) error {
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0xed && b[i+1] >= 0xa0 && b[i+1] <= 0xbf && b[i+2]&0xc0 == 0x80 {
			return s.unsupported("the pickle holds a str with a lone surrogate (U+D800 to U+DFFF), which no valid UTF-8 Go string can hold")
		}
	}
	return s.corrupt("str argument is not valid UTF-8")
}

// pkEscapedSurrogate reports whether the raw-unicode-escape text b (the
// argument of UNICODE) escapes a surrogate: \uD800 to \uDFFF or \U0000D800
// to \U0000DFFF. Python's pickler escapes every backslash as \u005c, so
// every \u in the text is an escape, and Python decodes surrogate escapes
// as lone surrogates even in pairs.
func pkEscapedSurrogate(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' || (b[i+1] != 'u' && b[i+1] != 'U') {
			continue
		}
		n := 4
		if b[i+1] == 'U' {
			n = 8
		}
		if i+2+n > len(b) {
			return false
		}
		v, err := strconv.ParseUint(string(b[i+2:i+2+n]), 16, 32)
		if err == nil && v >= 0xd800 && v <= 0xdfff {
			return true
		}
	}
	return false
}

// memoArg reads the memo index argument of a PUT or GET opcode: a decimal
// line for PUT and GET, one byte for BINPUT and BINGET, four little-endian
// bytes for LONG_BINPUT and LONG_BINGET.
func (s *pkScan) memoArg(op byte) (uint32, error) {
	switch op {
	case 'p', 'g':
		line, err := s.readLine()
		if err != nil {
			return 0, err
		}
		return s.textIndex(line)
	case 'q', 'h':
		b, err := s.read(1)
		if err != nil {
			return 0, err
		}
		return uint32(b[0]), nil
	default:
		b, err := s.read(4)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b), nil
	}
}
