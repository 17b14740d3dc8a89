#!/usr/bin/env bash
# Celery baseline for the no-op workload: creates (or reuses) a virtualenv with the pinned
# requirements, then runs xbench_celery.py, which starts the Celery worker(s), submits the
# tasks, collects the results, stops the workers, cleans its Redis keys and prints ONE JSON
# line on stdout (progress on stderr). See README.md.
#
#   bench/celery/run.sh [--tasks N] [--redis URL] [--workers K] [--concurrency C] [--pool P]
#                       [--window W] [--prefetch M] [--collect pubsub|native]
#
# Env: XCHANGE_VENV_DIR (default <repo>/target/venvs; the venv is <dir>/celery),
#      XCHANGE_REDIS_URL (default for --redis: redis://127.0.0.1:6379, database 15),
#      PYTHON (interpreter that creates the venv, default python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv_root=$(realpath -m "${XCHANGE_VENV_DIR:-$here/../../target/venvs}")
venv=$venv_root/celery
python=${PYTHON:-python3}

# The venv is reused while the requirements and the interpreter are the same.
want=$({ cat "$here/requirements.txt"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || $(cat "$venv/.requirements.sha256" 2>/dev/null || true) != "$want" ]]; then
  echo "[celery-bench] creating virtualenv $venv" >&2
  rm -rf "$venv"
  mkdir -p "$venv_root"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    -r "$here/requirements.txt" >&2
  echo "$want" >"$venv/.requirements.sha256"
else
  echo "[celery-bench] reusing virtualenv $venv" >&2
fi
exec "$venv/bin/python" "$here/xbench_celery.py" "$@"
