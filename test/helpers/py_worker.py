"""A test worker: serves queue `faces` with the SDK, printing one JSON line per thing it does.

Env: RUNSTATE_URL, RUNSTATE_TOKEN, WORKER_ID, CONCURRENCY. Items sleep `options.delay_ms`
in small steps, watching for a cancel; a load lists `options.items_per_stage` items.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
from runstate_worker import Cancelled, Worker  # noqa: E402


def say(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


worker = Worker(
    os.environ["RUNSTATE_URL"],
    token=os.environ["RUNSTATE_TOKEN"],
    queue=os.environ.get("QUEUE", "faces"),
    worker_id=os.environ.get("WORKER_ID"),
    concurrency=int(os.environ.get("CONCURRENCY", "1")),
    wait_ms=2000,
    grace_s=float(os.environ.get("GRACE_S", "5")),
)


@worker.load()
def load(job):
    n = int(job.options.get("items_per_stage", 4))
    say(event="load", job_id=job.job_id, stage=job.stage, key=job.idempotency_key)
    return [{"id": job.stage * 1000 + k, "title": "Portrait %d" % k} for k in range(1, n + 1)]


@worker.item()
def item(job):
    say(event="start", job_id=job.job_id, key=job.idempotency_key, attempt=job.attempt, worker=worker.worker_id)
    deadline = time.monotonic() + float(job.options.get("delay_ms", 20)) / 1000
    try:
        while time.monotonic() < deadline:
            job.check_cancelled()
            time.sleep(0.005)
    except Cancelled:
        say(event="cancelled", job_id=job.job_id, key=job.idempotency_key)
        raise
    say(event="done", job_id=job.job_id, key=job.idempotency_key, attempt=job.attempt)
    return {"cost": 0.5}


say(event="ready", worker=worker.worker_id)
worker.run()
say(event="stopped", worker=worker.worker_id)
