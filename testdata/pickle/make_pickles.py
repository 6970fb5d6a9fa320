#!/usr/bin/env python3
"""Test data for PickleCodec (pickle.go), made by the real Python.

Run from this directory with the standard library only; the Go tests never
run it, they read what it wrote.

    python3 make_pickles.py          writes python/ and refused/
    python3 make_pickles.py check    reads go/cases.tsv and go/*.pickle (written
                                     by `go test -run TestPickleEncodePythonReads
                                     -pickle.write`), loads each with
                                     pickle.loads and writes go/verdicts.tsv

python/CASE.pN.pickle is pickle.dumps(EXPR, protocol=N) for every case below
and N in 0..5; python/cases.tsv lists file, protocol and the exact EXPR.
refused/ holds, the same way, values PickleCodec must refuse: classes and
calls (os.system), sets, shared and recursive lists, unmapped dict keys.
go/verdicts.tsv has one line per Go-written file: the file, "ok" when
pickle.loads gave a value of exactly the expected types and value (the
expression in go/cases.tsv), else "FAIL", the SHA-256 of the bytes checked,
and the repr of what it loaded.
"""

import collections
import datetime
import decimal
import hashlib
import math
import os
import pickle
import sys

PROTOCOLS = range(0, 6)

# (case name, Python expression). The Go tests hold the Go value each must
# decode to, by case name.
CASES = [
    ("none", "None"),
    ("true", "True"),
    ("false", "False"),
    ("int_0", "0"),
    ("int_1", "1"),
    ("int_255", "255"),
    ("int_256", "256"),
    ("int_65535", "65535"),
    ("int_65536", "65536"),
    ("int_neg_1", "-1"),
    ("int_neg_256", "-256"),
    ("int32_max", "2**31 - 1"),
    ("int32_min", "-2**31"),
    ("int_2_31", "2**31"),
    ("int_ms_timestamp", "1700000000123"),
    ("int64_max", "2**63 - 1"),
    ("int64_min", "-2**63"),
    ("int_2_63", "2**63"),
    ("int_neg_2_63_minus_1", "-2**63 - 1"),
    ("int_2_64", "2**64"),
    ("int_2_1015", "2**1015"),  # LONG1 of 128 bytes
    ("int_neg_2_1100_plus", "-2**1100 + 12345"),  # LONG1 of 138 bytes
    ("int_3_3000", "3**3000"),  # LONG4 (and 1432 digits in text)
    ("float_0", "0.0"),
    ("float_neg_0", "-0.0"),
    ("float_1_5", "1.5"),
    ("float_0_1", "0.1"),
    ("float_1e300", "1e300"),
    ("float_neg_tiny", "-5e-324"),
    ("float_inf", "float('inf')"),
    ("float_neg_inf", "float('-inf')"),
    ("float_nan", "float('nan')"),
    ("str_empty", "''"),
    ("str_a", "'a'"),
    ("str_latin1", "'h\\xe9llo w\\xf6rld'"),
    ("str_emoji", "'party \\U0001f389 \\u4e2d\\u6587'"),
    ("str_escapes", "'line\\nbreak\\ttab \\\\ back\\x00nul \\'quote\\\" \\r'"),
    ("str_300", "'x' * 300"),
    ("str_e_1000", "'\\u00e9' * 1000"),
    ("bytes_empty", "b''"),
    ("bytes_a", "b'a'"),
    ("bytes_binary", "b'\\x00\\x7f\\x80\\xff'"),
    ("bytes_all", "bytes(range(256))"),
    ("bytes_300", "b'y' * 300"),
    ("list_empty", "[]"),
    ("list_1", "[1]"),
    ("list_3", "[1, 2, 3]"),
    ("list_mixed", "[None, True, 2, 2.5, 'three', b'four', [5], (6,), {'seven': 7}]"),
    ("list_nested", "[[1, [2, [3, []]]]]"),
    ("list_1500", "list(range(1500))"),
    ("tuple_empty", "()"),
    ("tuple_1", "(1,)"),
    ("tuple_2", "(1, 'b')"),
    ("tuple_3", "(1, 2, 3)"),
    ("tuple_4", "(1, 2, 3, 4)"),
    ("tuple_nested", "((1, 2), [3, (4,)])"),
    ("dict_empty", "{}"),
    ("dict_1", "{'a': 1}"),
    ("dict_nested", "{'a': 1, 'b': [1, 2], 'c': {'d': None, 'e': (True, 2.5)}}"),
    ("dict_int_keys", "{1: 'one', 2: 'two', -3: 'minus three'}"),
    ("dict_mixed_keys", "{'s': 1, 2: 'two', 2.5: 'float', None: 'none', False: 'false'}"),
    ("dict_big_int_key", "{2**40: 'big'}"),
    ("dict_1500", "{'k%d' % i: i for i in range(1500)}"),
    ("shared_str", "(lambda s: [s, s, s])('shared ' * 4)"),
    ("shared_bytes", "(lambda b: [b, b])(b'shared bytes')"),
    ("shared_tuple", "(lambda t: [t, t])((1, 'two'))"),
    ("shared_dict", "(lambda d: {'x': d, 'y': d})({'k': [1, 2]})"),
    ("shared_empty_list", "(lambda e: [e, e])([])"),
    ("record", "{'user_id': 12345, 'name': 'Ada Lovelace', 'email': 'ada@example.com', "
               "'tags': ['admin', 'beta'], 'score': 0.875, 'active': True, "
               "'last_login': 1700000000123, 'avatar': b'\\x89PNG\\r\\n', 'manager': None}"),
]


class Evil:
    """Unpickling an Evil() runs os.system('echo owned') in Python."""

    def __reduce__(self):
        return (os.system, ("echo owned",))


def shared_list():
    x = [1]
    return [x, x]


def shared_list_in_dict():
    x = ["a", "b"]
    return {"first": x, "second": x}


def recursive_list():
    a = []
    a.append(a)
    return a


def recursive_dict():
    d = {}
    d["self"] = d
    return d


def recursive_tuple():
    t = ([],)
    t[0].append(t)
    return t


# (case name, Python expression) of values PickleCodec refuses.
REFUSED = [
    ("os_system", "Evil()"),
    ("os_system_nested", "{'payload': [Evil()]}"),
    ("set", "{1, 2}"),
    ("set_nested", "[1, {2, 3}]"),
    ("frozenset", "frozenset({1})"),
    ("bytearray", "bytearray(b'ab')"),
    ("complex", "1j"),
    ("decimal", "decimal.Decimal('1.5')"),
    ("date", "datetime.date(2020, 1, 2)"),
    ("ordered_dict", "collections.OrderedDict(a=1)"),
    ("range", "range(3)"),
    ("shared_list", "shared_list()"),
    ("shared_list_in_dict", "shared_list_in_dict()"),
    ("recursive_list", "recursive_list()"),
    ("recursive_dict", "recursive_dict()"),
    ("recursive_tuple", "recursive_tuple()"),
    ("tuple_key", "{(1, 2): 'a'}"),
    ("bytes_key", "{b'k': 1}"),
    ("lone_surrogate", "'\\ud800'"),
]


def write_cases(directory, cases):
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".pickle"):
            os.remove(os.path.join(directory, name))
    with open(os.path.join(directory, "cases.tsv"), "w") as index:
        index.write("# file\tprotocol\texpression (pickle.dumps(expression, protocol))\n")
        for name, expr in cases:
            value = eval(expr)
            for protocol in PROTOCOLS:
                file = "%s.p%d.pickle" % (name, protocol)
                with open(os.path.join(directory, file), "wb") as f:
                    f.write(pickle.dumps(value, protocol=protocol))
                index.write("%s\t%d\t%s\n" % (file, protocol, expr))


def same(a, b):
    """Equal values of exactly the same types (1 is not True, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        kb = {(type(k), k): k for k in b}
        for k in a:
            if (type(k), k) not in kb or not same(a[k], b[kb[(type(k), k)]]):
                return False
        return True
    return a == b


def check():
    lines = []
    with open(os.path.join("go", "cases.tsv")) as index:
        for line in index:
            if line.startswith("#") or not line.strip():
                continue
            name, expr = line.rstrip("\n").split("\t")
            with open(os.path.join("go", name + ".pickle"), "rb") as f:
                data = f.read()
            digest = hashlib.sha256(data).hexdigest()
            try:
                got = pickle.loads(data)
            except Exception as e:  # reported, not raised: every file gets a verdict
                lines.append("%s\tFAIL\t%s\tpickle.loads: %r\n" % (name, digest, e))
                continue
            verdict = "ok" if same(got, eval(expr)) else "FAIL"
            shown = repr(got)
            if len(shown) > 200:
                shown = shown[:200] + "..."
            lines.append("%s\t%s\t%s\t%s\n" % (name, verdict, digest, shown))
    with open(os.path.join("go", "verdicts.tsv"), "w") as out:
        out.write("# file\tverdict of pickle.loads on the Go-written bytes\tsha256 of the bytes\trepr of the value\n")
        out.writelines(lines)
    failed = [l for l in lines if "\tFAIL\t" in l]
    sys.stdout.writelines(failed)
    print("%d Go-written pickles, %d failed" % (len(lines), len(failed)))


if __name__ == "__main__":
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    if sys.argv[1:] == ["check"]:
        check()
    else:
        write_cases("python", CASES)
        write_cases("refused", REFUSED)
        print("Python %s: %d cases, %d refused cases, protocols %s"
              % (sys.version.split()[0], len(CASES), len(REFUSED), list(PROTOCOLS)))
