#!/usr/bin/env bash
# Fuzzes the HTTP API of a live node with Schemathesis, from its own /openapi.json.
#
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (test cases per operation and phase; 50)
#
# Creates, or reuses, a virtual environment at ${XCHANGE_VENV_DIR:-<repo>/target/venvs}/schemathesis
# with Schemathesis and its dependencies from PyPI, pinned below; it is rebuilt when the pins
# or the Python interpreter change (their hash is kept in the environment). Starts
# `xchange serve` on a free loopback port with a fresh data folder and the defaults
# (embedded SQLite, in-process bus, API keys on; no XCHANGE_* setting of the caller), waits for
# /healthz, runs every check that applies to this API with a fixed seed, a bounded number
# of examples and a per-request timeout, stops the node, and exits non-zero on any failure.
#
# Environment: XCHANGE_BIN (the xchange binary; default: target/debug/xchange, built when
# missing), PYTHON (python3), XCHANGE_SCHEMATHESIS_SEED (the seed; 20240607),
# XCHANGE_SCHEMATHESIS_REPORT (a folder for a JUnit report and a cassette of every request,
# kept after the run).
set -euo pipefail

# Schemathesis and everything it pulls in, pinned exactly (`pip freeze` of the environment),
# so that a run generates the same cases wherever it runs.
SCHEMATHESIS_VERSION=4.32.5
REQUIREMENTS="schemathesis==$SCHEMATHESIS_VERSION
anyio==4.16.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
graphql-core==3.3.2
harfile==0.6.0
hypothesis==6.170.17
hypothesis-graphql==0.13.5
idna==3.20
iniconfig==2.3.1
jsonschema_rs==0.60.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
packaging==26.4
pluggy==1.7.0
Pygments==2.21.0
pyrate-limiter==4.5.1
pytest==9.2.0
PyYAML==6.0.4
requests==2.34.2
rich==15.0.0
sortedcontainers==2.4.0
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
max_examples="${1:-50}"
seed="${XCHANGE_SCHEMATHESIS_SEED:-20240607}"
venv="${XCHANGE_VENV_DIR:-$repo/target/venvs}/schemathesis"
python="${PYTHON:-python3}"

if ! [[ "$max_examples" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [MAX_EXAMPLES]   (a positive integer; 50 by default)" >&2
    exit 2
fi

# The virtual environment, as interop/python/run.sh makes it.
want="$( { echo "$REQUIREMENTS"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"
if [[ ! -x "$venv/bin/schemathesis" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "schemathesis: creating the virtual environment at $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    echo "$REQUIREMENTS" >"$venv/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$venv/requirements.txt"
    echo "$want" > "$stamp"
else
    echo "schemathesis: reusing the virtual environment at $venv" >&2
fi

# The binary.
bin="${XCHANGE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/xchange}"
if [[ -z "${XCHANGE_BIN:-}" ]]; then
    echo "schemathesis: building $bin" >&2
    (cd "$repo" && cargo build --quiet -p xchange-cli --bin xchange)
fi
if [[ ! -x "$bin" ]]; then
    echo "schemathesis: no xchange binary at $bin" >&2
    exit 1
fi

# A node on a free port, with its own data folder.
work="$(mktemp -d "${TMPDIR:-/tmp}/xchange-schemathesis.XXXXXX")"
node_pid=""
stop_node() {
    if [[ -n "$node_pid" ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$node_pid" 2>/dev/null; then
            echo "schemathesis: the node did not stop on SIGTERM; killing it" >&2
            kill -KILL "$node_pid" 2>/dev/null || true
        fi
        wait "$node_pid" 2>/dev/null || true
    fi
    node_pid=""
}
cleanup() {
    stop_node
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: the node binds a free port and prints it, so two runs never race for one.
# The caller's XCHANGE_* settings (a store, a bus, a config file) would change what is tested.
unset_settings=()
for name in $(compgen -e | grep '^XCHANGE_' || true); do
    unset_settings+=(-u "$name")
done
env "${unset_settings[@]}" RUST_LOG="${RUST_LOG:-warn}" "$bin" serve --listen 127.0.0.1:0 --data "$work/data" \
    >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
base=""
for _ in $(seq 1 300); do
    base="$(sed -n 's|^xchange serve: listening on \(http://[0-9.:]*\) .*|\1|p' "$work/node.out" | head -n 1)"
    [[ -n "$base" ]] && break
    if ! kill -0 "$node_pid" 2>/dev/null; then
        echo "schemathesis: the node exited at start:" >&2
        cat "$work/node.out" "$work/node.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$base" ]]; then
    echo "schemathesis: the node did not say where it listens within 30 s" >&2
    cat "$work/node.out" "$work/node.err" >&2
    exit 1
fi
"$venv/bin/python" - "$base/healthz" <<'PY'
import json, sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status == 200 and json.load(r).get("status") == "ok":
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"schemathesis: {sys.argv[1]} did not answer ok within 30 s")
    time.sleep(0.1)
PY
echo "schemathesis: node at $base (data $work/data)" >&2

# With API keys on (the default), the node wrote an admin key at its first start: every
# request carries it, so that the run reaches the handlers rather than the 401s.
auth_args=()
if [[ -s "$work/data/admin.key" ]]; then
    auth_args=(-H "Authorization: Bearer $(tr -d '[:space:]' <"$work/data/admin.key")")
fi

# What the checks expect beyond Schemathesis' defaults (see the notes at the run below).
cat >"$work/schemathesis.toml" <<'TOML'
hooks = "xchange_checks"

[cache]
enabled = false

# Every check (set here, not with --checks, so that an operation below may turn one off).
# An [[operations]] entry names its operations as "METHOD /path" (its include-* keys are
# alternatives: include-method with include-path would select every operation of the method).
[checks]
enabled = true
unsupported_method = { enabled = false }
allow_header_conformance = { enabled = false }
negative_data_rejection = { expected-statuses = ["400", "401", "403", "404", "409", "413", "415", "422"] }
positive_data_acceptance = { expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429", "5xx"] }

[[operations]]
include-name-regex = '^GET /v1/(jobs/\{job_id\}/)?events$'
request-timeout = 1.0
max-stream-events = 5
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-name-regex = '^POST /v1/(jobs/validate|jobs/explain|.*/query)$'
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-name = "GET /v1/agents/connect"
checks.positive_data_acceptance.enabled = false

# The run's own admin key is one the fuzzer finds (in GET /v1/keys) and would revoke, after
# which every request is a 401: key revocation is tested by the node's own tests instead.
[[operations]]
include-name = "DELETE /v1/keys/{key_id}"
enabled = false

[[operations]]
include-name = "POST /v1/jobs"
checks.not_a_server_error.enabled = false
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]
TOML

# POST /v1/jobs answers a private job that no connected member can run with 503
# `no_eligible_contractor` (5024): the node's state, not the input, refuses it (see
# docs/service.md). The stock server-error check is off there and this one takes its place:
# every other 5xx still fails.
cat >"$work/xchange_checks.py" <<'PY'
import schemathesis


@schemathesis.check
def not_a_server_error_but_no_eligible_contractor(ctx, response, case):
    if case.operation.method.upper() != "POST" or case.operation.path != "/v1/jobs":
        return None
    if response.status_code < 500:
        return None
    try:
        code = response.json()["error"]["code"]
    except Exception:
        code = None
    if response.status_code == 503 and code == 5024:
        return None
    raise AssertionError(f"Server error: {response.status_code} (code {code}) from POST /v1/jobs")
PY

report_args=()
if [[ -n "${XCHANGE_SCHEMATHESIS_REPORT:-}" ]]; then
    report_dir="$(mkdir -p "$XCHANGE_SCHEMATHESIS_REPORT" && cd "$XCHANGE_SCHEMATHESIS_REPORT" && pwd)"
    report_args=(--report junit,vcr --report-dir "$report_dir")
fi

# The checks: all of them, with these choices (the expectations above):
# - negative_data_rejection: a request that breaks the document must be refused with a 4xx
#   (413 `too_large` included: a filter too deep is refused before it is read);
# - positive_data_acceptance: a request the document allows must not be refused with 422
#   `schema_invalid`, which means "does not match its schema": the document would be
#   wrong. 400 `invalid_request` is a refusal a schema cannot state (a deadline in the
#   past, a body id that is not the path's), and is accepted. Where a request carries a
#   filter (the queries, `search`, the event stream's `filter`) or a JSON Schema and an
#   input checked against it (job submission, validation, explanation), the document
#   says "an object" and the filter language or JSON Schema decides: 422 is accepted there;
# - unsupported_method and allow_header_conformance are left out: a method an endpoint
#   does not take is answered 400 `invalid_request` with the error body (the status-code
#   table has no 405), not 405 with an Allow header;
# - the event streams never end while the node runs: each is read for at most one second
#   or five events, then checked as it is;
# - /v1/agents/connect answers a plain GET (no Upgrade) with 400 and the error body, so
#   only positive_data_acceptance is off there.
# The cache of past failures is off and the seed fixed, so that a run is reproducible.
started=$(date +%s)
set +e
(cd "$work" && PYTHONPATH="$work" "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --generation-database none \
    --request-timeout 10 \
    --workers 1 \
    --no-color \
    "${auth_args[@]}" "${report_args[@]}")
status=$?
set -e
echo "schemathesis: finished in $(( $(date +%s) - started )) s with exit status $status" >&2

stop_node
if grep -q "panicked" "$work/node.err"; then
    echo "schemathesis: the node panicked:" >&2
    grep -A5 "panicked" "$work/node.err" >&2
    status=1
fi
exit "$status"
