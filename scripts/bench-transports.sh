#!/usr/bin/env bash
# The contract net between processes over NATS and over Redis, and the same no-op workload
# on Celery with a Redis broker, in one run on this machine (docs/benchmarks.md).
#
# Starts its own nats-server (with its monitoring port, for the broker's counters) and
# redis-server on free loopback ports, so the figures count only this run's messages and
# the shared servers are left alone. For each transport: sample:2 and broadcast, signing
# off and on, 1,000 agents in one agent process (the broker, the manager and the agents
# share the two cores). RUNS repeats each configuration (medians are reported).
#
# Usage: scripts/bench-transports.sh [RUNS]
#   (env: TASKS, BROADCAST_TASKS, BROADCAST_WINDOW, CELERY_TASKS, AGENTS)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
tasks=${TASKS:-50000}
broadcast_tasks=${BROADCAST_TASKS:-500}
# A broadcast puts a bid from every agent in flight per task: a wide window would only
# overflow the manager's subscription (counted as `overflowed`) and wait out bid windows.
broadcast_window=${BROADCAST_WINDOW:-16}
celery_tasks=${CELERY_TASKS:-20000}
agents=${AGENTS:-1000}
cargo build -q --release --bin xchange
x=./target/release/xchange

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
tmp=$(mktemp -d)
nats_port=$(free_port); monitor_port=$(free_port); redis_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" -m "$monitor_port" -js -sd "$tmp/nats" >"$tmp/nats.log" 2>&1 &
nats_pid=$!
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $nats_pid $redis_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
for port in "$nats_port" "$monitor_port" "$redis_port"; do
  for _ in $(seq 1 50); do answers "$port" && break; sleep 0.1; done
done
nats="nats://127.0.0.1:$nats_port"
redis="redis://127.0.0.1:$redis_port"
out=target/bench-transports.jsonl
mkdir -p target && : >"$out"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

for _ in $(seq 1 "$runs"); do
  for bus in "$nats" "$redis"; do
    for announce in sample:2 broadcast; do
      n=$tasks; window=512
      [ "$announce" = broadcast ] && n=$broadcast_tasks && window=$broadcast_window
      for sign in "" --sign; do
        echo "bench bus $bus $announce ${sign:-unsigned} tasks=$n" >&2
        "$x" bench bus --bus "$bus" --nats-monitor "http://127.0.0.1:$monitor_port" --agents "$agents" \
          --tasks "$n" --window "$window" --announce "$announce" $sign --json | tail -n 1 >>"$out"
      done
    done
  done
  echo "celery on $redis tasks=$celery_tasks" >&2
  bench/celery/run.sh --tasks "$celery_tasks" --redis "$redis/0" | tail -n 1 >>"$out"
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda xs: statistics.median(xs) if xs else 0
celery = [r for r in rows if r.get("system") == "celery"]
celery_rate = med([r["tasks_per_s"] for r in celery])
print(f"{'transport':9} {'announce':10} {'signing':7} {'contracts/s':>11} {'award p50 ms':>12} {'award p99 ms':>12} {'x celery':>8}  broker")
seen = []
for r in rows:
    if r.get("bench") != "bus":
        continue
    key = (r["transport"], r["announce"], r["signing"])
    if key in seen:
        continue
    seen.append(key)
    same = [x for x in rows if x.get("bench") == "bus" and (x["transport"], x["announce"], x["signing"]) == key]
    rate = med([x["contracts_per_s"] for x in same])
    p50 = med([x["announce_to_award_p50_us"] for x in same]) / 1000
    p99 = med([x["announce_to_award_p99_us"] for x in same]) / 1000
    ratio = rate / celery_rate if celery_rate else 0
    print(f"{key[0]:9} {key[1]:10} {'on' if key[2] else 'off':7} {rate:11.0f} {p50:12.1f} {p99:12.1f} {ratio:8.1f}  {same[-1]['broker']}")
if celery:
    c = celery[-1]
    print(f"celery    no-op (redis broker, {c['config']['workers']} worker, {c['config']['pool']} x{c['config']['concurrency']}): "
          f"{celery_rate:.0f} tasks/s median of {[r['tasks_per_s'] for r in celery]}, "
          f"p50 {med([r['latency_ms']['p50'] for r in celery]):.0f} ms; broker {c['broker']['commands_delta']}")
print(f"runs: {sys.argv[1]}")
PY
