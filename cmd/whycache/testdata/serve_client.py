#!/usr/bin/env python3
"""Uses `whycache serve` from Python with the redis module (Debian's
python3-redis) the way an application would: set, get, set with expiry,
scan, delete. Exits non-zero on the first check that fails.

    python3 serve_client.py --host 127.0.0.1 --port 6380
    python3 serve_client.py --unix /run/whycache/app.sock
"""
import argparse
import sys
import time

import redis


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6380)
    ap.add_argument("--unix")
    ap.add_argument("--password")
    a = ap.parse_args()
    if a.unix:
        r = redis.Redis(unix_socket_path=a.unix, password=a.password)
    else:
        r = redis.Redis(host=a.host, port=a.port, password=a.password)

    assert r.ping()
    prefix = "py:%d:" % time.time_ns()
    assert r.set(prefix + "a", b"\x00binary\xff") is True
    assert r.get(prefix + "a") == b"\x00binary\xff"
    assert r.get(prefix + "missing") is None
    assert r.mget([prefix + "a", prefix + "missing"]) == [b"\x00binary\xff", None]

    # Expiry: SET EX, then TTL, then gone after it passed.
    try:
        r.set(prefix + "e", "soon", ex=1)
    except redis.exceptions.ResponseError as e:
        assert "expiry not supported by this build" in str(e), e
        print("expiry: not supported by this build")
    else:
        ttl = r.ttl(prefix + "e")
        assert 0 < ttl <= 1, ttl
        assert r.get(prefix + "e") == b"soon"
        time.sleep(1.2)
        assert r.get(prefix + "e") is None
        assert r.ttl(prefix + "e") == -2
        print("expiry: ok")

    # A pipeline of writes, then a scan by prefix in small pages.
    with r.pipeline(transaction=False) as p:
        for i in range(25):
            p.set(prefix + "k%02d" % i, str(i))
        assert p.execute() == [True] * 25
    keys = sorted(r.scan_iter(match=prefix + "k*", count=4))
    assert keys == [(prefix + "k%02d" % i).encode() for i in range(25)], keys

    assert r.delete(prefix + "a", prefix + "k00", prefix + "missing") == 2
    assert r.exists(prefix + "a", prefix + "k01") == 1
    assert r.dbsize() >= 24
    print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
