#!/usr/bin/env bash
# Fuzzes each target of fuzz/ in turn (cargo-fuzz, libFuzzer) and minimizes its corpus.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        default 600
#
# Per target: builds it, runs it for SECONDS_PER_TARGET (one process, -max_total_time) on
# fuzz/corpus/<target>/ (written to) plus fuzz/seeds/<target>/ and fuzz/regressions/<target>/
# (read only) with the dictionary fuzz/dict/<target>.dict, then minimizes
# fuzz/corpus/<target>/ with `cargo fuzz cmin` to the inputs that cover its edges, and
# prints executions, exec/s, corpus size and crashes. A crashing input lands in fuzz/artifacts/<target>/ (not committed): keep it
# in fuzz/regressions/<target>/ once fixed. Exits 1 if any target crashed.
#
# Not run in CI (CI replays the committed inputs as ordinary tests: the `fuzz_corpus` tests
# of xchange-protocol, xchange-filter and xchange-rules). docs/reliability.md records runs.
#
# Environment: FUZZ_TARGETS (default "envelope filter rules"), FUZZ_SANITIZER (address,
# the default, or none: faster, for safe code), CARGO_TARGET_DIR (default target/fuzz).
# Needs `cargo install cargo-fuzz --locked` and a C++ compiler (libFuzzer is built from
# source). The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's -Z flags.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-600}"
targets="${FUZZ_TARGETS:-envelope filter rules}"
sanitizer="${FUZZ_SANITIZER:-address}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target/fuzz}"
logs="$target_dir/fuzz-logs"
export RUSTC_BOOTSTRAP=1
mkdir -p "$logs"

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 2; }
fuzz=(cargo fuzz)
common=(--fuzz-dir fuzz --target-dir "$target_dir" --sanitizer "$sanitizer")

# One statistic from libFuzzer's -print_final_stats output.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }
corpus_size() { find "$1" -type f | wc -l | tr -d ' '; }
corpus_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
artifacts() { find "fuzz/artifacts/$1" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) \
  -newer "$2" 2>/dev/null | sort; }

started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
summary="$logs/summary.txt"
printf '%-9s %8s %12s %8s %13s %13s %8s\n' target seconds executions exec/s corpus_files corpus_bytes crashes \
  > "$summary"
failed=0
for t in $targets; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  dirs=("$corpus" "fuzz/seeds/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  log="$logs/$t.log"
  stamp="$logs/$t.start"
  touch "$stamp"
  echo "=== $t: building" >&2
  "${fuzz[@]}" build "${common[@]}" "$t" >&2
  echo "=== $t: fuzzing for ${secs}s (log: $log)" >&2
  status=0
  "${fuzz[@]}" run "${common[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$secs" -print_final_stats=1 -dict="fuzz/dict/$t.dict" -timeout=10 \
    -rss_limit_mb=2048 > "$log" 2>&1 || status=$?
  found="$(artifacts "$t" "$stamp")"
  crashes=$(printf '%s' "$found" | grep -c . || true)
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    echo "=== $t: exit status $status; crashing inputs:" >&2
    printf '%s\n' "$found" >&2
    grep -m 5 -E 'panicked|ERROR|SUMMARY' "$log" >&2 || true
  fi
  echo "=== $t: minimizing $corpus" >&2
  before=$(corpus_size "$corpus")
  # Edge coverage only (-use_counters=0): one input per covered edge rather than per edge
  # and hit-count bucket, which keeps the same edges in a corpus a few times smaller.
  "${fuzz[@]}" cmin "${common[@]}" "$t" "$corpus" -- -use_counters=0 > "$logs/$t.cmin.log" 2>&1
  echo "=== $t: corpus $before -> $(corpus_size "$corpus") files" >&2
  printf '%-9s %8s %12s %8s %13s %13s %8s\n' "$t" "$secs" "$(stat number_of_executed_units "$log")" \
    "$(stat average_exec_per_sec "$log")" "$(corpus_size "$corpus")" "$(corpus_bytes "$corpus")" "$crashes" \
    >> "$summary"
done
echo "fuzzing started $started, ended $(date -u +%Y-%m-%dT%H:%M:%SZ), sanitizer $sanitizer" >> "$summary"
cat "$summary"
exit "$failed"
