"""Celery app and no-op task of the Celery baseline benchmark (see README.md).

Imported both by the worker processes (`celery -A xbench_tasks worker`) and by the producer
(xbench_celery.py). Everything run-specific comes from XBENCH_* environment variables set by
the producer, so a run touches only its own keys and queue on the shared Redis.
"""

import os
import pathlib

from celery import Celery
from celery.signals import worker_ready

BROKER_URL = os.environ.get("XBENCH_BROKER_URL", "redis://127.0.0.1:6379/15")
PREFIX = os.environ.get("XBENCH_PREFIX", "xbench_celery_")
QUEUE = os.environ.get("XBENCH_QUEUE", "xbench-celery")
PREFETCH = int(os.environ.get("XBENCH_PREFETCH", "64"))
SERIALIZER = os.environ.get("XBENCH_SERIALIZER", "json")
# "worker": results are stored in the Redis backend (SETEX + PUBLISH per task).
# "producer-pubsub": the producer has no result backend of its own, so apply_async does not
#   SUBSCRIBE per task; results are read by one PSUBSCRIBE in xbench_celery.py.
# "producer-native": the producer uses Celery's own Redis result consumer (AsyncResult.then).
ROLE = os.environ.get("XBENCH_ROLE", "worker")

app = Celery("xbench")
app.conf.update(
    broker_url=BROKER_URL,
    result_backend=None if ROLE == "producer-pubsub" else BROKER_URL,
    # Every key (queue lists, bindings, unacked bookkeeping, result keys and their pub/sub
    # channels) starts with PREFIX, so the run is isolated and cleaned up by prefix.
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_default_queue=QUEUE,
    task_serializer=SERIALIZER,
    result_serializer=SERIALIZER,
    accept_content=[SERIALIZER],
    result_accept_content=[SERIALIZER],
    task_ignore_result=False,
    result_expires=300,  # short: results are read at once, and the keys are deleted anyway
    result_extended=False,  # no args/name/worker copied into each result
    task_acks_late=False,  # ack on receipt (the default): no second round-trip after the task
    worker_prefetch_multiplier=PREFETCH,  # short tasks: keep many reserved per process
    worker_disable_rate_limits=True,
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_enable_remote_control=False,  # no pidbox fan-out queue to consume
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_track_started=False,
)


@app.task(name="xbench.noop")
def noop(i):
    """The no-op: returns a small result that travels back through the result backend."""
    return {"ok": True, "i": i}


@worker_ready.connect
def _announce_ready(sender=None, **_kwargs):
    ready_dir = os.environ.get("XBENCH_READY_DIR")
    if ready_dir:
        name = getattr(sender, "hostname", None) or str(os.getpid())
        pathlib.Path(ready_dir, name.replace("/", "_")).write_text(str(os.getpid()))
