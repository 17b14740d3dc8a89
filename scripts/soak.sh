#!/usr/bin/env bash
# Soaks the exchange: `xchange bench soak` at half its measured maximum, then the curve.
#
#   scripts/soak.sh [ARGS...]        e.g. --secs 600 (the default), --rate 300, --agents 2
#
# Builds the release binary, runs `xchange bench soak --csv docs/soak/<UTC time>.csv --json
# ARGS...` (an `xchange serve` process and contractors on its WebSocket, see the module docs
# of crates/xchange-cli/src/bench_soak/), keeps its output next to the CSV (.log), and
# draws the serve process's RSS and the p50/p99 submit-to-completion latency
# against minutes into docs/soak/soak.svg with Python's standard library alone.
#
# Not run in CI. docs/reliability.md ("Soak") records runs. Environment: CARGO_TARGET_DIR
# (default target), SOAK_SVG (default docs/soak/soak.svg).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
svg="${SOAK_SVG:-docs/soak/soak.svg}"
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
csv="docs/soak/$stamp.csv"
mkdir -p docs/soak

cargo build --release -p xchange-cli --target-dir "$target_dir"
echo "start $(date -u '+%F %T') UTC, commit $(git rev-parse --short HEAD), load:$(uptime | sed 's/.*load average://')" \
  | tee "docs/soak/$stamp.log"
"$target_dir/release/xchange" bench soak --csv "$csv" --json "$@" 2> >(tee -a "docs/soak/$stamp.log" >&2) \
  | tee -a "docs/soak/$stamp.log"
echo "end $(date -u '+%F %T') UTC, load:$(uptime | sed 's/.*load average://')" | tee -a "docs/soak/$stamp.log"

python3 - "$csv" "$svg" <<'PY'
import csv, math, sys

rows = list(csv.DictReader(open(sys.argv[1])))
minutes = [float(r["t_s"]) / 60 for r in rows]
W, H, L, R, T, B = 760, 250, 70, 20, 34, 40  # panel size and margins


def nice(top):
    """A round axis maximum above `top` and its tick step, for at most 6 ticks."""
    base = 10 ** math.floor(math.log10(max(top, 1e-9))) / 10
    step = next(base * k for k in (1, 2, 2.5, 5, 10, 20, 25, 50, 100) if top / (base * k) <= 6)
    return step * math.ceil(top / step + 1e-9), step


def panel(y0, title, unit, series):
    top, step = nice(max(v for _, vs, _ in series for v in vs))
    right = max(minutes[-1], 1)
    x = lambda m: L + (W - L - R) * m / right
    y = lambda v: y0 + T + (H - T - B) * (1 - v / top)
    out = [f'<text x="{L}" y="{y0 + 20}" font-weight="bold">{title}</text>']
    v = 0.0
    while v <= top + 1e-9:
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    for m in range(0, int(right) + 1):
        out.append(f'<text x="{x(m):.1f}" y="{y0 + H - B + 16}" text-anchor="middle">{m}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{y0 + H - 6}" text-anchor="middle">minutes</text>')
    out.append(f'<text x="14" y="{y0 + T + (H - T - B) / 2}" transform="rotate(-90 14 {y0 + T + (H - T - B) / 2})" '
               f'text-anchor="middle">{unit}</text>')
    for i, (name, values, colour) in enumerate(series):
        pts = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in zip(minutes, values))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
        out.append(f'<text x="{W - R - 150 + 75 * i}" y="{y0 + 20}" fill="{colour}">{name}</text>')
    out.append(f'<rect x="{L}" y="{y0 + T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#888"/>')
    return out


col = lambda k: [float(r[k]) for r in rows]
body = panel(0, "xchange serve: resident memory", "MiB", [("RSS", col("rss_mib"), "#1f77b4")])
body += panel(H, "submit-to-completion latency per window", "ms",
              [("p99", col("p99_ms"), "#d62728"), ("p50", col("p50_ms"), "#2ca02c")])
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{2 * H}" font-family="sans-serif" '
       f'font-size="12"><rect width="100%" height="100%" fill="white"/>', *body, "</svg>"]
open(sys.argv[2], "w").write("\n".join(svg) + "\n")
print(f"wrote {sys.argv[2]} from {sys.argv[1]} ({len(rows)} samples)")
PY
