#!/usr/bin/env bash
# Runs the AIXP/1 interoperability test in Python (interop_test.py).
#
# Creates, or reuses, a virtual environment at ${XCHANGE_VENV_DIR:-<repo>/target/venvs}/interop
# with the exact packages of requirements.txt; it is rebuilt when requirements.txt or the
# Python interpreter changes (their hash is kept in the environment).
#
# Environment: XCHANGE_BIN (the xchange binary) and XCHANGE_TEST_NATS (e.g.
# nats://127.0.0.1:4222) enable the live part; PYTHON picks the interpreter (python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${XCHANGE_VENV_DIR:-$repo/target/venvs}/interop"
python="${PYTHON:-python3}"

want="$( { cat "$here/requirements.txt"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"

if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "interop: creating the virtual environment at $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$here/requirements.txt"
    echo "$want" > "$stamp"
else
    echo "interop: reusing the virtual environment at $venv" >&2
fi

cd "$here"
exec "$venv/bin/python" -u interop_test.py "$@"
