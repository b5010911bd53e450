"""`npm run demo:worker`: a worker for the demo pipeline face_processor_workers (queue `faces`).

Env: RUNSTATE_URL (http://127.0.0.1:3000), RUNSTATE_TOKEN (else ./data/admin-token),
WORKERS (4 handler threads). Items take about `options.delay_ms` (400) each; a load lists
`options.items_per_stage` (12) portraits.
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runstate_worker import Worker  # noqa: E402

CREDITS = {"detecting_faces": 0.1, "running_inpainting": 1.0}


def token():
    if os.environ.get("RUNSTATE_TOKEN"):
        return os.environ["RUNSTATE_TOKEN"]
    path = os.path.join(os.environ.get("RUNSTATE_DATA", "data"), "admin-token")
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        sys.exit("demo:worker: set RUNSTATE_TOKEN, or start the service once (npm start) so that %s exists" % path)


url = os.environ.get("RUNSTATE_URL", "http://127.0.0.1:3000")
worker = Worker(url, token=token(), queue="faces", concurrency=int(os.environ.get("WORKERS", "4")))


@worker.load()
def portraits(job):
    count = job.options.get("items_per_stage", 12)
    n = count[job.stage - 1] if isinstance(count, list) else int(count)
    print("%s: listing %d portraits for %s" % (job.stage_key, n, job.run_id), flush=True)
    return [{"id": job.stage * 100000 + k, "title": "Portrait %d" % k} for k in range(1, n + 1)]


@worker.item()
def process(job):
    delay = float(job.options.get("delay_ms", 400)) / 1000
    end = time.monotonic() + random.uniform(0.5, 1.5) * delay
    while time.monotonic() < end:
        job.check_cancelled()
        time.sleep(0.02)
    print("%s: %s done (attempt %d)" % (job.stage_key, job.item["title"], job.attempt), flush=True)
    return {"cost": CREDITS.get(job.stage_key, 0)}


print("demo worker %s serving queue faces at %s; Ctrl-C to stop" % (worker.worker_id, url), flush=True)
worker.run()
