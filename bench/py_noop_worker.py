"""The bench's worker: answers every item of queue `bench` at once (sdk/python/runstate_worker.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python"))
from runstate_worker import Worker  # noqa: E402

worker = Worker(os.environ["RUNSTATE_URL"], token=os.environ["RUNSTATE_TOKEN"], queue="bench",
                worker_id=os.environ.get("WORKER_ID"), concurrency=16, max_claim=16, wait_ms=1000, grace_s=1)


@worker.item()
def noop(job):
    return None


print("ready", flush=True)
worker.run()
