#!/usr/bin/env bash
# Fleet throughput on one machine: `parafetch worker` at 1, 2 and 3 workers draining the
# same queue of JOBS jobs over 50 loopback hosts (one nginx listening on 127.0.0.2-51),
# through one redis-server. For each fleet size: wall time from the workers' start to the
# last result record, jobs/s (and the steady rate, from 10% to 90% of the records), and
# CPU per job of the workers, Redis and nginx (from
# /proc, over the run), so the bottleneck can be named.
#   benches/queue.sh [--quick] [--runs N]     (needs nginx, redis-server, redis-cli)
# Uses target/release/parafetch (built with --features queue) or $PARAFETCH.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-100000}
RUNS=1
WORKERS=${WORKERS:-1 2 3}
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) JOBS=10000; WORKERS="1 3" ;;
    --runs) RUNS=$2; shift ;;
    *) echo "usage: $0 [--quick] [--runs N]" >&2; exit 2 ;;
    esac
    shift
done
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${PARAFETCH:-$TARGET/release/parafetch}
if [ -z "${PARAFETCH:-}" ]; then
    cargo build --release --features queue --bin parafetch >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
REDIS_SERVER=$(command -v redis-server)
REDIS_CLI=$(command -v redis-cli)
HZ=$(getconf CLK_TCK)

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# utime + stime of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

http_port=$(free_port)
{
    echo "worker_processes 1; daemon on; pid $dir/nginx.pid; error_log $dir/error.log;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off; keepalive_requests 1000000;"
    echo "  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;"
    echo "  uwsgi_temp_path $dir; scgi_temp_path $dir;"
    echo "  server {"
    for i in $(seq 2 51); do echo "    listen 127.0.0.$i:$http_port;"; done
    echo "    location / { return 200 \"ok\\n\"; } } }"
} > "$dir/nginx.conf"
"$NGINX" -p "$dir" -c "$dir/nginx.conf"
nginx_worker=$(pgrep -P "$(cat "$dir/nginx.pid")" | head -1)

redis_port=$(free_port)
"$REDIS_SERVER" --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$dir/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
REDIS="redis://127.0.0.1:$redis_port"
for _ in $(seq 100); do "$REDIS_CLI" -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done

for i in $(seq 1 "$JOBS"); do echo "http://127.0.0.$((i % 50 + 2)):$http_port/?i=$i"; done > "$dir/urls"

echo "parafetch worker fleet: $JOBS jobs over 50 hosts, -n 64 --per-host 4, $(nproc) cores"
printf '%-8s %5s %9s %9s %12s %16s %14s %14s %10s\n' workers run seconds jobs/s "steady j/s" \
    "worker CPU µs/job" "Redis µs/job" "nginx µs/job" "cores busy"
for w in $WORKERS; do
    for run in $(seq 1 "$RUNS"); do
        "$REDIS_CLI" -p "$redis_port" flushall >/dev/null
        "$BIN" enqueue --redis "$REDIS" --queue bench -i "$dir/urls" 2>/dev/null
        r0=$(ticks "$redis_pid")
        n0=$(ticks "$nginx_worker")
        t0=$(date +%s.%N)
        wp=()
        for k in $(seq 1 "$w"); do
            "$BIN" worker --redis "$REDIS" --queue bench -n 64 --per-host 4 --lease 3 \
                2>"$dir/worker$k.log" &
            wp+=($!)
            pids+=($!)
        done
        deadline=$((SECONDS + 300))
        # The steady rate: from the first look at 10% of the records to the first at 90%
        # (the start, as workers share out the shards, and the tail are left out).
        t10=""; t90=""; c10=0; c90=0
        while :; do
            n=$("$REDIS_CLI" -p "$redis_port" xlen bench:results)
            if [ -z "$t10" ] && [ "$n" -ge $((JOBS / 10)) ]; then t10=$(date +%s.%N); c10=$n; fi
            if [ -z "$t90" ] && [ "$n" -ge $((JOBS * 9 / 10)) ]; then t90=$(date +%s.%N); c90=$n; fi
            [ "$n" -ge "$JOBS" ] && break
            if [ $SECONDS -gt $deadline ]; then echo "timed out" >&2; exit 1; fi
            sleep 0.02
        done
        t1=$(date +%s.%N)
        wt=0
        for p in "${wp[@]}"; do wt=$((wt + $(ticks "$p"))); done
        r1=$(ticks "$redis_pid")
        n1=$(ticks "$nginx_worker")
        for p in "${wp[@]}"; do kill -TERM "$p"; done
        for p in "${wp[@]}"; do wait "$p" || { echo "a worker failed:" >&2; cat "$dir"/worker*.log >&2; exit 1; }; done
        got=$("$BIN" results --redis "$REDIS" --queue bench | wc -l)
        [ "$got" -eq "$JOBS" ] || { echo "$got records for $JOBS jobs" >&2; exit 1; }
        awk -v w="$w" -v run="$run" -v t0="$t0" -v t1="$t1" -v jobs="$JOBS" -v hz="$HZ" \
            -v wt="$wt" -v rt=$((r1 - r0)) -v nt=$((n1 - n0)) -v t10="$t10" -v t90="$t90" \
            -v c10="$c10" -v c90="$c90" 'BEGIN {
            s = t1 - t0; us = 1e6 / hz / jobs
            steady = (t90 > t10) ? (c90 - c10) / (t90 - t10) : 0
            printf "%-8s %5s %9.2f %9.0f %12.0f %16.1f %14.1f %14.1f %10.2f\n", w, run, s, jobs / s, steady,
                wt * us, rt * us, nt * us, (wt + rt + nt) / hz / s
        }'
    done
done
