#!/usr/bin/env bash
# Runs `xchange bench inproc` with 1,000 and 100,000 agents, alternating, RUNS times each, and
# prints every run's figures plus the median contracts/s of each size and their ratio.
# Usage: scripts/bench-inproc.sh [RUNS] [TASKS] [WINDOW]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
tasks=${2:-200000}
window=${3:-}
cargo build -q --release --bin xchange
out=$(mktemp)
for _ in $(seq 1 "$runs"); do
  for agents in 1000 100000; do
    ./target/release/xchange bench inproc --agents "$agents" --tasks "$tasks" --announce sample:2 \
      ${window:+--window "$window"} --json \
      | tail -n 1 | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for agents in (1000, 100000):
    r = [x for x in rows if x["agents"] == agents]
    med[agents] = statistics.median(x["contracts_per_s"] for x in r)
    print(f"agents={agents}: contracts_per_s median {med[agents]:.0f} of {[x['contracts_per_s'] for x in r]}, "
          f"messages_per_task {sorted({x['messages_per_task'] for x in r})}, "
          f"announce_to_award p50 median {statistics.median(x['announce_to_award_p50_us'] for x in r)} us, "
          f"p99 median {statistics.median(x['announce_to_award_p99_us'] for x in r)} us")
print(f"ratio 100k/1k = {med[100000] / med[1000]:.3f}")
PY
