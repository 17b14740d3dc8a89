"""Celery baseline: N no-op tasks through Celery with a Redis broker and result backend.

Starts the Celery worker(s), submits the tasks keeping --window in flight, collects every
result as it is published, stops the workers, removes its keys and prints one JSON line on
stdout (progress goes to stderr). Run it through run.sh, which prepares the virtualenv.
See README.md for the settings and why.
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_DB = 15
# Commands by which a message is handed to Redis (task into the queue, result to its channel)
# and taken out again, reported one by one in "commands_delta".
PUSH_COMMANDS = ("lpush", "rpush", "publish")
SHOWN_COMMANDS = PUSH_COMMANDS + (
    "brpop", "rpop", "setex", "set", "zadd", "zrem", "hset", "hdel", "subscribe",
    "unsubscribe", "psubscribe", "multi", "exec", "sadd", "smembers", "get", "mget",
)


def log(*parts):
    # Progress only: a closed stderr must not stop the run before it has cleaned up.
    try:
        print("[celery-bench]", *parts, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # so that the workers are stopped and the keys removed


def broker_url(url):
    """The Redis URL with a database number: the given one, else DEFAULT_DB."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        sys.exit(f"--redis must be a redis:// URL, got {url!r}")
    path = parts.path.strip("/")
    if not path:
        parts = parts._replace(path=f"/{DEFAULT_DB}")
    elif not path.isdigit():
        sys.exit(f"--redis database must be a number, got {path!r}")
    return urllib.parse.urlunsplit(parts)


def quantile(sorted_values, q):
    """Nearest-rank quantile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-int(q * 1_000_000) * len(sorted_values) // 1_000_000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def loadavg():
    try:
        return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def command_calls(client):
    stats = client.info("commandstats")
    calls = {k[len("cmdstat_"):]: v["calls"] for k, v in stats.items() if k.startswith("cmdstat_")}
    return client.info("stats")["total_commands_processed"], calls


def start_workers(args, env, workdir):
    procs = []
    for k in range(args.workers):
        logfile = open(workdir / f"worker{k}.log", "wb")
        cmd = [
            sys.executable, "-m", "celery", "-A", "xbench_tasks", "worker",
            "--pool", args.pool, "--concurrency", str(args.concurrency),
            "--hostname", f"xbench{k}-{env['XBENCH_RUN_ID']}@%h",
            "--queues", env["XBENCH_QUEUE"], "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdin=subprocess.DEVNULL,
                                stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append((proc, logfile))
    return procs


def wait_ready(procs, ready_dir, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(ready_dir.iterdir())) >= len(procs):
            return
        for proc, logfile in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; log: {logfile.name}")
        time.sleep(0.05)
    raise RuntimeError(f"workers not ready after {timeout} s")


def stop_workers(procs):
    for proc, _ in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # warm shutdown of the main process
    for proc, logfile in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            log(f"worker {proc.pid} did not stop; killing its process group")
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created with start_new_session
            proc.wait()
        logfile.close()


def run_pubsub(app, task, redis_client, prefix, n, window, stall_timeout, tag):
    """Submit n tasks keeping `window` in flight; results arrive on one PSUBSCRIBE.

    The producer app has no result backend, so apply_async does not SUBSCRIBE per task; the
    worker still stores each result with SETEX and PUBLISHes it on the task's channel.
    Returns (first_submit, last_result, latencies_s, failures)."""
    channel_prefix = f"{prefix}celery-task-meta-"
    cut = len(channel_prefix)
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(channel_prefix + "*")
    first = pubsub.get_message(timeout=10)  # the psubscribe confirmation
    if not first or first["type"] != "psubscribe":
        raise RuntimeError(f"psubscribe not confirmed: {first!r}")
    inflight = {}
    latencies = []
    failures = 0
    submitted = 0
    window = window or n
    start = last = None
    try:
        with app.producer_or_acquire() as producer:
            while len(latencies) < n:
                while submitted < n and len(inflight) < window:
                    tid = f"{tag}-{submitted}-{uuid.uuid4().hex[:12]}"
                    t0 = time.perf_counter()
                    if start is None:
                        start = t0
                    inflight[tid] = t0
                    task.apply_async((submitted,), task_id=tid, producer=producer)
                    submitted += 1
                msg = pubsub.get_message(timeout=stall_timeout)
                if msg is None:
                    raise RuntimeError(f"no result for {stall_timeout} s "
                                       f"({len(latencies)} of {n} received)")
                now = time.perf_counter()
                if msg["type"] != "pmessage":
                    continue
                t0 = inflight.pop(msg["channel"][cut:].decode(), None)
                if t0 is None:
                    continue  # not one of ours
                latencies.append(now - t0)
                last = now
                if b'"SUCCESS"' not in msg["data"]:
                    failures += 1
    finally:
        pubsub.close()
    return start, last, latencies, failures


def run_native(app, task, n, window, stall_timeout, tag):
    """The same loop with Celery's own result consumer: apply_async SUBSCRIBEs to the task's
    channel, AsyncResult.then() registers the callback, and the loop drains the consumer's
    pub/sub connection (one message per drain_events call)."""
    consumer = app.backend.result_consumer
    inflight = {}
    latencies = []
    failures = [0]
    submitted = 0
    window = window or n
    state = {"last": None}

    def on_ready(result):
        now = time.perf_counter()
        entry = inflight.pop(result.id, None)
        if entry is None:
            return
        latencies.append(now - entry[1])
        state["last"] = now
        if result.state != "SUCCESS":
            failures[0] += 1

    start = None
    with app.producer_or_acquire() as producer:
        while len(latencies) < n:
            while submitted < n and len(inflight) < window:
                tid = f"{tag}-{submitted}-{uuid.uuid4().hex[:12]}"
                t0 = time.perf_counter()
                if start is None:
                    start = t0
                result = task.apply_async((submitted,), task_id=tid, producer=producer)
                inflight[tid] = (result, t0)
                result.then(on_ready)
                submitted += 1
            before = len(latencies)
            deadline = time.monotonic() + stall_timeout
            while len(latencies) == before:
                consumer.drain_events(timeout=1.0)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no result for {stall_timeout} s "
                                       f"({len(latencies)} of {n} received)")
    return start, state["last"], latencies, failures[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--redis", default=os.environ.get("XCHANGE_REDIS_URL", "redis://127.0.0.1:6379"),
                    help=f"Redis URL; database {DEFAULT_DB} unless the URL names one")
    ap.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="pool size per worker (default: 1 for solo, else the number of CPUs)")
    ap.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    ap.add_argument("--prefetch", type=int, default=64, help="worker_prefetch_multiplier")
    ap.add_argument("--window", type=int, default=1024,
                    help="tasks in flight at once (0: submit all at once)")
    ap.add_argument("--collect", default="pubsub", choices=["pubsub", "native"])
    ap.add_argument("--warmup", type=int, default=500, help="unmeasured tasks first")
    ap.add_argument("--stall-timeout", type=float, default=60.0)
    args = ap.parse_args()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    if args.concurrency is None:
        args.concurrency = 1 if args.pool == "solo" else (os.cpu_count() or 1)
    if args.pool == "solo" and args.concurrency != 1:
        sys.exit("--pool solo runs one task at a time: --concurrency must be 1")
    if args.tasks <= 0 or args.workers <= 0 or args.window < 0:
        sys.exit("--tasks and --workers must be positive, --window not negative")

    url = broker_url(args.redis)
    run_id = f"{os.getpid()}{uuid.uuid4().hex[:6]}"
    prefix = f"xbench_celery_{run_id}_"
    queue = f"xbench-celery-{run_id}"
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="xbench-celery-"))
    ready_dir = workdir / "ready"
    ready_dir.mkdir()
    env = dict(os.environ, XBENCH_BROKER_URL=url, XBENCH_PREFIX=prefix, XBENCH_QUEUE=queue,
               XBENCH_PREFETCH=str(args.prefetch), XBENCH_SERIALIZER="json",
               XBENCH_READY_DIR=str(ready_dir), XBENCH_RUN_ID=run_id, XBENCH_ROLE="worker")
    env["PYTHONPATH"] = str(HERE) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # The producer reads the same variables, with its own role.
    os.environ.update({k: v for k, v in env.items() if k.startswith("XBENCH_")})
    os.environ["XBENCH_ROLE"] = f"producer-{args.collect}"
    sys.path.insert(0, str(HERE))

    import celery
    import kombu
    import redis
    import xbench_tasks

    client = redis.Redis.from_url(url)
    client.ping()
    server = client.info("server")
    db_keys_before = client.dbsize()
    log(f"redis {server['redis_version']} at {url} (db keys before: {db_keys_before}); "
        f"prefix {prefix}; load {loadavg()}")

    procs = []
    result = None
    try:
        procs = start_workers(args, env, workdir)
        wait_ready(procs, ready_dir, timeout=60)
        log(f"{args.workers} worker(s) ready (pool {args.pool}, concurrency {args.concurrency})")

        if args.collect == "pubsub":
            def run(n, tag):
                return run_pubsub(xbench_tasks.app, xbench_tasks.noop, client, prefix, n,
                                  args.window, args.stall_timeout, tag)
        else:
            def run(n, tag):
                return run_native(xbench_tasks.app, xbench_tasks.noop, n, args.window,
                                  args.stall_timeout, tag)

        if args.warmup:
            run(args.warmup, "warmup")
            log(f"warm-up of {args.warmup} tasks done")

        load_before = loadavg()
        total_before, calls_before = command_calls(client)
        cpu_before = os.times()
        start, last, latencies, failures = run(args.tasks, "t")
        cpu_after = os.times()
        total_after, calls_after = command_calls(client)
        load_after = loadavg()

        seconds = last - start
        latencies.sort()
        delta = {c: calls_after.get(c, 0) - calls_before.get(c, 0)
                 for c in set(calls_after) | set(calls_before)}
        result = {
            "system": "celery",
            "celery_version": celery.__version__,
            "tasks": args.tasks,
            "seconds": round(seconds, 3),
            "tasks_per_s": round(args.tasks / seconds, 1),
            "latency_ms": {"p50": round(quantile(latencies, 0.50) * 1e3, 3),
                           "p99": round(quantile(latencies, 0.99) * 1e3, 3)},
            "failed": failures,
            "broker": {
                "redis_version": server["redis_version"],
                "redis_commands_processed_delta": total_after - total_before,
                "redis_publish_or_push_delta": sum(delta.get(c, 0) for c in PUSH_COMMANDS),
                "commands_delta": {c: delta[c] for c in SHOWN_COMMANDS if delta.get(c)},
                "commands_per_task": round((total_after - total_before) / args.tasks, 2),
            },
            "config": {
                "collect": args.collect,
                "window": args.window,
                "workers": args.workers,
                "pool": args.pool,
                "concurrency": args.concurrency,
                "prefetch_multiplier": args.prefetch,
                "serializer": "json",
                "acks_late": False,
                "result_backend": "redis",
                "result_expires_s": 300,
                "warmup": args.warmup,
                "worker_flags": "--without-gossip --without-mingle --without-heartbeat",
                "remote_control": False,
                "broker_url": url,
                "kombu_version": kombu.__version__,
                "redis_py_version": redis.__version__,
                "python": sys.version.split()[0],
            },
            "machine": {
                "nproc": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "producer_cpu_s": round((cpu_after.user - cpu_before.user)
                                        + (cpu_after.system - cpu_before.system), 3),
            },
        }
    finally:
        stop_workers(procs)
        if result is None:
            for path in sorted(workdir.glob("worker*.log")):
                tail = path.read_text(errors="replace").splitlines()[-30:]
                log(f"{path.name} (last lines):\n" + "\n".join(tail))
        removed = 0
        batch = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += client.unlink(*batch)
                batch = []
        if batch:
            removed += client.unlink(*batch)
        left = sum(1 for _ in client.scan_iter(match=prefix + "*", count=1000))
        log(f"removed {removed} keys with prefix {prefix}; {left} left; "
            f"db keys now {client.dbsize()} (before {db_keys_before})")
        shutil.rmtree(workdir, ignore_errors=True)

    log(f"{args.tasks} tasks in {result['seconds']} s: {result['tasks_per_s']}/s, "
        f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms")
    print(json.dumps(result), flush=True)
    if result["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
