#!/usr/bin/env ruby
# Uses `whycache serve` from Ruby with the redis gem (Debian's ruby-redis)
# the way an application would: set, get, set with expiry, mset, scan,
# delete. Exits non-zero on the first check that fails.
#
#     ruby serve_client.rb --host 127.0.0.1 --port 6380
#     ruby serve_client.rb --unix /run/whycache/app.sock
require "optparse"
require "redis"

opts = { host: "127.0.0.1", port: 6380 }
OptionParser.new do |o|
  o.on("--host HOST") { |v| opts[:host] = v }
  o.on("--port PORT", Integer) { |v| opts[:port] = v }
  o.on("--unix PATH") { |v| opts[:path] = v }
end.parse!
r = opts[:path] ? Redis.new(path: opts[:path]) : Redis.new(host: opts[:host], port: opts[:port])

def check(what, got, want)
  return if got == want
  warn "#{what}: got #{got.inspect}, want #{want.inspect}"
  exit 1
end

check("PING", r.ping, "PONG")
prefix = "rb:#{Process.clock_gettime(Process::CLOCK_REALTIME, :nanosecond)}:"
bin = "\x00binary\xff".b
check("SET", r.set(prefix + "a", bin), "OK")
check("GET", r.get(prefix + "a").b, bin)
check("GET missing", r.get(prefix + "missing"), nil)
check("MGET", r.mget(prefix + "a", prefix + "missing").map { |v| v&.b }, [bin, nil])

# Expiry: SET EX, then TTL, then gone after it passed.
check("SET EX", r.set(prefix + "e", "soon", ex: 1), "OK")
ttl = r.ttl(prefix + "e")
check("TTL in (0, 1]", ttl > 0 && ttl <= 1, true)
sleep 1.2
check("GET after expiry", r.get(prefix + "e"), nil)
check("TTL after expiry", r.ttl(prefix + "e"), -2)

# MSET, a pipeline of writes, then a scan by prefix in small pages.
check("MSET", r.mset(prefix + "m1", "1", prefix + "m2", "2"), "OK")
check("MGET after MSET", r.mget(prefix + "m1", prefix + "m2"), ["1", "2"])
replies = r.pipelined { |p| 25.times { |i| p.set(prefix + format("k%02d", i), i.to_s) } }
check("pipeline", replies, ["OK"] * 25)
keys = r.scan_each(match: prefix + "k*", count: 4).to_a.sort
check("SCAN", keys, (0...25).map { |i| prefix + format("k%02d", i) })

check("DEL", r.del(prefix + "a", prefix + "k00", prefix + "missing"), 2)
check("EXISTS", r.exists(prefix + "a", prefix + "k01"), 1)
check("DBSIZE >= 26", r.dbsize >= 26, true)
puts "all checks passed"
