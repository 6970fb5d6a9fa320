#!/usr/bin/env bash
# Compares 'whycache serve' with redis-server using redis-benchmark (Debian's
# redis-tools), in one run on one machine: GET and SET, without pipelining
# (-P 1) and with 16 commands per round trip (-P 16), over TCP loopback and
# over a Unix socket. Every case runs ROUNDS times, alternating the two
# servers; the table holds the medians and their ratio.
#
#   bash bench/serve/run.sh                 # N=200000 C=50 ROUNDS=3
#   N=50000 ROUNDS=1 bash bench/serve/run.sh
#   TRANSPORTS=tcp PIPELINES=1 ROUNDS=10 OUT=/tmp/serve bash bench/serve/run.sh
#
# TRANSPORTS (tcp unix) and PIPELINES (1 16) pick the cases; OUT is where
# serve.csv and serve.md go (bench/results by default).
#
# whycache serves a file store log (every SET committed and fdatasynced
# before it answers; concurrent SETs share a commit) and a state file on
# /dev/shm; redis-server runs without persistence. Results:
# bench/results/serve.csv (every run) and bench/results/serve.md (the
# table). Needs go, redis-server and redis-benchmark.
set -euo pipefail

N=${N:-200000}
C=${C:-50}
ROUNDS=${ROUNDS:-3}
WPORT=${WPORT:-6391}
RPORT=${RPORT:-6392}

TRANSPORTS=${TRANSPORTS:-tcp unix}
PIPELINES=${PIPELINES:-1 16}

root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-$root/bench/results}"
for tool in go redis-server redis-benchmark redis-cli; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
for port in "$WPORT" "$RPORT"; do
	if redis-cli -p "$port" ping >/dev/null 2>&1; then
		echo "run.sh: port $port is in use (set WPORT/RPORT)" >&2
		exit 1
	fi
done

tmp="$(mktemp -d)"
shm=/dev/shm
[ -d "$shm" ] || shm="$tmp"
state="$shm/whycache-serve-bench-$$.state"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp" "$state" "$state".*
}
trap cleanup EXIT

(cd "$root" && go build -o "$tmp/whycache" ./cmd/whycache)
wc=("$tmp/whycache" --store "file:$tmp/log" --state "$state")
"${wc[@]}" init-schema >/dev/null
"${wc[@]}" serve --addr "127.0.0.1:$WPORT" --unix "$tmp/whycache.sock" 2>"$tmp/serve.log" &
pids+=($!)
redis-server --port "$RPORT" --bind 127.0.0.1 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
	--save '' --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
pids+=($!)
for target in "-p $WPORT" "-p $RPORT" "-s $tmp/whycache.sock" "-s $tmp/redis.sock"; do
	for _ in $(seq 100); do
		# shellcheck disable=SC2086
		redis-cli $target ping >/dev/null 2>&1 && break
		sleep 0.1
	done
done

csv="$out/serve.csv"
mkdir -p "$out"
echo "round,transport,pipeline,server,test,rps" >"$csv"
bench() { # round transport pipeline server connection-args...
	local round=$1 transport=$2 pipeline=$3 server=$4
	shift 4
	redis-benchmark "$@" -t set,get -n "$N" -c "$C" -P "$pipeline" --csv 2>/dev/null |
		awk -F'"' -v pre="$round,$transport,$pipeline,$server" '$2 == "SET" || $2 == "GET" { print pre "," $2 "," $4 }' >>"$csv"
}
for round in $(seq "$ROUNDS"); do
	for transport in $TRANSPORTS; do
		for pipeline in $PIPELINES; do
			# Alternate which server goes first.
			order="whycache redis"
			[ $((round % 2)) -eq 0 ] && order="redis whycache"
			for server in $order; do
				case "$server/$transport" in
				whycache/tcp) args=(-h 127.0.0.1 -p "$WPORT") ;;
				redis/tcp) args=(-h 127.0.0.1 -p "$RPORT") ;;
				whycache/unix) args=(-s "$tmp/whycache.sock") ;;
				redis/unix) args=(-s "$tmp/redis.sock") ;;
				esac
				bench "$round" "$transport" "$pipeline" "$server" "${args[@]}"
				echo "round $round $transport -P $pipeline $server: $(tail -n 2 "$csv" | cut -d, -f5,6 | tr '\n' ' ')" >&2
			done
		done
	done
done

# Medians and ratios.
{
	echo "# whycache serve vs redis-server (redis-benchmark)"
	echo
	echo "Run of $(date -u +%Y-%m-%d) on $(nproc) cores: \`bash bench/serve/run.sh\` (N=$N requests, $C clients, $ROUNDS rounds, medians)."
	echo "$(redis-server --version | cut -d' ' -f1-3), $(go version | cut -d' ' -f3), redis-benchmark from redis-tools."
	echo "whycache: file store log (each SET committed and fdatasynced before the reply; concurrent SETs share commits), state on $shm; redis-server: no persistence."
	echo
	echo "| transport | pipeline | command | whycache (req/s) | redis-server (req/s) | ratio |"
	echo "|---|---:|---|---:|---:|---:|"
	for transport in $TRANSPORTS; do
		for pipeline in $PIPELINES; do
			for test in GET SET; do
				med() {
					awk -F, -v t="$transport" -v p="$pipeline" -v s="$1" -v x="$test" \
						'$2 == t && $3 == p && $4 == s && $5 == x { print $6 }' "$csv" | sort -g |
						awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
				}
				w=$(med whycache)
				r=$(med redis)
				awk -v t="$transport" -v p="$pipeline" -v x="$test" -v w="$w" -v r="$r" \
					'BEGIN { printf "| %s | -P %s | %s | %.0f | %.0f | %.2f× |\n", t, p, x, w, r, (r > 0 ? w / r : 0) }'
			done
		done
	done
} >"$out/serve.md"
cat "$out/serve.md"
