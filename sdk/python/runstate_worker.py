"""A runstate worker in a few lines: claim jobs of a queue, run a handler per stage, answer.

Standard library only, Python 3.9+. One file: copy it next to your code.

    from runstate_worker import Worker

    worker = Worker("http://127.0.0.1:3000", token="...", queue="faces")

    @worker.load("cropping_faces")
    def list_images(job):
        return [{"id": 1, "title": "Image 1"}]

    @worker.item("cropping_faces")
    def crop(job):
        ...                       # job.item, job.attempt, job.idempotency_key, job.options
        return {"cost": 0.1}

    worker.run()                  # until SIGTERM or SIGINT

A handler that raises fails the attempt (retried with backoff by the service); raise
`Fail("why", retryable=False)` to fail the item at once. Heartbeats run on a thread of their
own; when the run is cancelled `job.cancelled` is set and `job.check_cancelled()` raises
`Cancelled`. Answers that handlers finish together go out in one request, which also claims
their successors (POST /api/v1/workers/answers); an answer the service cannot store for now
(503) is sent again for as long as its lease could last. On SIGTERM the worker stops claiming, lets running handlers finish for
`grace_s` seconds, then gives back (releases) the jobs still held, so another worker gets them
at once with the same attempt and idempotency key (docs/workers.md).
"""

import http.client
import json
import os
import queue as queues
import signal
import socket
import threading
import time
import urllib.parse

# How long the answering thread waits for the answers of the other jobs in hand before it sends.
_GATHER_S = 0.005

__all__ = ["Worker", "Job", "Fail", "Cancelled", "LeaseLost", "RunstateError"]


class RunstateError(Exception):
    """An error answer of the service: `status`, `code` and `message` as in docs/api.md."""

    def __init__(self, status, code, message):
        super().__init__("%s %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message


class LeaseLost(RunstateError):
    """The job's lease ran out or went to another worker: nothing this worker sends is recorded."""


class Fail(Exception):
    """Raise from a handler to fail the attempt; `retryable=False` fails the item at once."""

    def __init__(self, message, retryable=True):
        super().__init__(message)
        self.retryable = retryable


class Cancelled(Exception):
    """The run was cancelled: raised by `job.check_cancelled()`; nothing more is recorded."""


class Job:
    """One claimed job, as the service describes it (docs/workers.md), plus its cancel flag."""

    def __init__(self, worker, data):
        self._worker = worker
        self.data = data
        self.job_id = data["job_id"]
        self.kind = data["kind"]
        self.run_id = data["run_id"]
        self.site_id = data.get("site_id")
        self.pipeline = data.get("pipeline")
        self.stage = data["stage"]
        self.stage_key = data["stage_key"]
        self.item = data.get("item")
        self.attempt = data["attempt"]
        self.idempotency_key = data["idempotency_key"]
        self.options = data.get("options") or {}
        self.lease_ms = data.get("lease_ms") or 30000
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.message = None
        self.answered = False

    def check_cancelled(self):
        """Raises `Cancelled` once the run is cancelled (or the lease is lost)."""
        if self.cancelled.is_set():
            raise Cancelled("run %s was cancelled" % self.run_id)
        if self.lost.is_set():
            raise LeaseLost(409, "LEASE_LOST", "the lease of job %s is lost" % self.job_id)

    def heartbeat(self, message=None):
        """Extends the lease now (the worker also does it on its own), with an optional message."""
        if message is not None:
            self.message = str(message)
        self._worker._beat(self)

    def __repr__(self):
        return "Job(%s %s stage=%s attempt=%s)" % (self.job_id, self.kind, self.stage_key, self.attempt)


class _Answer:
    """An answer on its way to the answering thread; `kept` once its slot went to a new job."""

    __slots__ = ("job", "what", "body", "kept")

    def __init__(self, job, what, body):
        self.job = job
        self.what = what
        self.body = body
        self.kept = False


class Worker:
    """Claims jobs of one queue and runs the handler registered for each job's stage.

    base_url      the service, e.g. http://127.0.0.1:3000
    token         a worker token (or the admin token)
    queue         the queue to serve
    worker_id     [<hostname>-<pid>] shown in GET /api/v1/workers/
    concurrency   [1] jobs run at once, each on a thread
    max_claim     [16] most jobs one claim asks for
    wait_ms       [20000] how long one claim waits for a job (long poll, at most 30000)
    grace_s       [10] on stop, how long running handlers may take before their jobs are released
    """

    def __init__(self, base_url, token, queue, worker_id=None, concurrency=1, max_claim=16, wait_ms=20000, grace_s=10.0):
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https"):
            raise ValueError("Expected `base_url` to be an http:// or https:// URL, got %r." % base_url)
        if not token:
            raise ValueError("Expected `token` to be a worker token.")
        if int(concurrency) < 1:
            raise ValueError("Expected `concurrency` to be at least 1, got %r." % concurrency)
        self._url = url
        self._token = token
        self.queue = queue
        self.worker_id = worker_id or "%s-%d" % (socket.gethostname(), os.getpid())
        self.concurrency = int(concurrency)
        self.max_claim = max(1, min(int(max_claim), 100))
        self.wait_ms = max(0, min(int(wait_ms), 30000))
        self.grace_s = float(grace_s)
        self._items = {}
        self._loads = {}
        self._held = {}
        self._lock = threading.Lock()
        self._free = threading.Semaphore(self.concurrency)
        self._stopping = threading.Event()
        self._local = threading.local()
        self._threads = []
        self._todo = queues.Queue()
        self._answers = queues.Queue()
        self._answerer = None
        self._batch_answers = True
        self._claiming = None

    # --- registering handlers -----------------------------------------------------------

    def item(self, stage=None):
        """Decorator: `fn(job) -> {"cost"?, "output"?} | None` for the items of `stage` (a key; None: any stage)."""

        def register(fn):
            self._items[stage] = fn
            return fn

        return register

    def load(self, stage=None):
        """Decorator: `fn(job) -> [{"id", "title"?, ...}]` lists the items of `stage` (None: any stage)."""

        def register(fn):
            self._loads[stage] = fn
            return fn

        return register

    # --- running ------------------------------------------------------------------------

    def run(self, install_signals=True):
        """Claims and runs jobs until `stop()` (or SIGTERM/SIGINT when `install_signals`)."""
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._on_signal())
        beat = threading.Thread(target=self._heartbeats, name="runstate-heartbeat", daemon=True)
        beat.start()
        # A fixed set of handler threads, each with its own kept-alive connection.
        self._threads = [
            threading.Thread(target=self._handle, name="runstate-handler-%d" % i, daemon=True) for i in range(self.concurrency)
        ]
        for t in self._threads:
            t.start()
        self._answerer = threading.Thread(target=self._answering, name="runstate-answers", daemon=True)
        self._answerer.start()
        try:
            while not self._stopping.is_set():
                # With a timeout: a signal does not end a plain acquire, and a stop must.
                if not self._free.acquire(timeout=0.2):
                    continue
                free = 1
                # A moment for more handlers to come free, so that one claim asks for several.
                gather = time.monotonic() + 0.002
                while free < self.max_claim and self._free.acquire(timeout=max(0.0, gather - time.monotonic())):
                    free += 1
                if self._stopping.is_set():
                    self._give_back(free)
                    break
                try:
                    jobs = self._claim(free)
                except Exception:
                    self._give_back(free)
                    if self._stopping.wait(1.0):
                        break
                    continue
                self._give_back(free - len(jobs))
                for data in jobs:
                    self._take(data)
        finally:
            self._drain()

    def _take(self, data):
        # A claimed job, its slot already taken: held (heartbeats, release on stop) and run.
        job = Job(self, data)
        with self._lock:
            self._held[job.job_id] = job
        self._todo.put(job)

    def stop(self):
        """Stops claiming; running handlers get `grace_s` to finish, then their jobs are released."""
        self._stopping.set()

    def _on_signal(self):
        self.stop()
        # A long poll in progress would hold the stop for up to `wait_ms`: hang up on it. The
        # service claims nothing for a worker that hung up.
        conn = self._claiming
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _give_back(self, n):
        for _ in range(n):
            self._free.release()

    def _claim(self, n):
        # While stopping, a long poll would only delay the exit.
        wait = 0 if self._stopping.is_set() else self.wait_ms
        self._claiming = self._connection(wait / 1000 + 30)
        try:
            res = self._post("/api/v1/workers/claim", {"queue": self.queue, "worker_id": self.worker_id, "max": n, "wait_ms": wait}, timeout=wait / 1000 + 30)
        finally:
            self._claiming = None
        return res.get("jobs", [])

    def _handle(self):
        while True:
            job = self._todo.get()
            if job is None:
                return
            self._work(job)

    def _work(self, job):
        answered = False  # the answering thread has the job (and its slot) from here
        try:
            handlers = self._loads if job.kind == "load" else self._items
            fn = handlers.get(job.stage_key) or handlers.get(None)
            if fn is None:
                answered = self._answer(job, "fail", {"error": "no %s handler for stage %s on this worker" % (job.kind, job.stage_key), "retryable": True})
                return
            try:
                result = fn(job)
            except Cancelled:
                return
            except LeaseLost:
                return
            except Fail as err:
                answered = self._answer(job, "fail", {"error": str(err) or "failed", "retryable": bool(err.retryable)})
                return
            except Exception as err:  # the handler's fault is the attempt's failure
                answered = self._answer(job, "fail", {"error": "%s: %s" % (type(err).__name__, err), "retryable": True})
                return
            if job.cancelled.is_set() or job.lost.is_set():
                return
            if job.kind == "load":
                answered = self._answer(job, "complete", {"items": list(result or [])})
            else:
                answered = self._answer(job, "complete", dict(result or {}))
        finally:
            if not answered:
                self._let_go(job, kept=False)

    def _answer(self, job, what, body):
        """Hands the answer to the answering thread, which also lets the job and its slot go once it is sent."""
        # The answering thread sends what several handlers finished together in one request, and
        # asks for as many new jobs in it; the job's slot stays taken until then (a new job may
        # take it). The handler is free for its next job at once.
        self._answers.put(_Answer(job, what, body))
        return True

    def _let_go(self, job, kept):
        # The job is done with here; its slot is free again unless a job claimed with its answer took it.
        with self._lock:
            self._held.pop(job.job_id, None)
        if not kept:
            self._free.release()

    def _answering(self):
        while True:
            first = self._answers.get()
            if first is None:
                return
            batch = [first]
            # A moment for the other jobs in hand to finish too, so that they share the request:
            # none once every job this worker holds has its answer in the batch.
            gather = time.monotonic() + _GATHER_S
            while len(batch) < 100:
                try:
                    more = self._answers.get_nowait()
                except queues.Empty:
                    left = gather - time.monotonic()
                    if left <= 0 or self._all_answered(len(batch)):
                        break
                    try:
                        more = self._answers.get(timeout=min(left, 0.0005))
                    except queues.Empty:
                        continue
                if more is None:
                    self._answers.put(None)
                    break
                batch.append(more)
            try:
                self._send_answers(batch)
            finally:
                for entry in batch:
                    entry.job.answered = True
                    self._let_go(entry.job, entry.kept)

    def _all_answered(self, n):
        # Jobs held and not yet answered are those running (or about to): n of them are in the batch.
        with self._lock:
            return len(self._held) <= n

    def _send_answers(self, batch):
        if not self._batch_answers:
            for entry in batch:
                self._answer_one(entry.job, entry.what, entry.body)
            return
        payload = {"answers": [{"job_id": e.job.job_id, e.what: e.body} for e in batch]}
        if not self._stopping.is_set():
            # The slots these answers free go to the next jobs, asked for in the same request: a
            # short wait lets the service queue the items that follow these.
            payload["claim"] = {"queue": self.queue, "worker_id": self.worker_id, "max": min(len(batch), self.max_claim), "wait_ms": min(self.wait_ms, 50)}
        deadline = time.monotonic() + max(min(e.job.lease_ms for e in batch) / 1000.0, 5.0)
        while True:
            try:
                res = self._post("/api/v1/workers/answers", payload)
            except RunstateError as err:
                if err.status == 503 and time.monotonic() < deadline and not self._stopping.wait(0.5):
                    continue  # the database is away for now: nothing was stored; try again
                # A service without POST /answers (404), or a batch it refuses as a whole: one by
                # one, each with its own answer.
                if err.status == 404:
                    self._batch_answers = False
                for entry in batch:
                    self._answer_one(entry.job, entry.what, entry.body)
                return
            except Exception:
                if time.monotonic() > deadline or self._stopping.wait(0.5):
                    return
                continue
            for entry, result in zip(batch, res.get("results", [])):
                if (result.get("error") or {}).get("code") == "LEASE_LOST":
                    entry.job.lost.set()
            for entry, data in zip(batch, res.get("jobs") or []):
                entry.kept = True
                self._take(data)
            return

    def _answer_one(self, job, what, body):
        # The service may be restarting: keep trying for as long as the lease could last. An
        # answer it already took comes back `duplicate`, one too late `LEASE_LOST`: both end it.
        deadline = time.monotonic() + max(job.lease_ms / 1000.0, 5.0)
        while True:
            try:
                self._post("/api/v1/workers/jobs/%s/%s" % (job.job_id, what), body)
                return
            except LeaseLost:
                job.lost.set()
                return
            except RunstateError as err:
                # 503: the database is away for now and nothing was stored; any other refusal is final.
                if err.status != 503 or time.monotonic() > deadline or self._stopping.wait(0.5):
                    return
            except Exception:
                if time.monotonic() > deadline or self._stopping.wait(0.5):
                    return

    def _heartbeats(self):
        while True:
            with self._lock:
                held = list(self._held.values())
            # A third of the shortest lease: two beats may be lost before the lease is.
            period = min([j.lease_ms for j in held] or [3000]) / 3000.0
            time.sleep(max(0.05, period))
            for job in held:
                if not job.answered:
                    self._beat(job)

    def _beat(self, job):
        body = {} if job.message is None else {"message": job.message}
        try:
            res = self._post("/api/v1/workers/jobs/%s/heartbeat" % job.job_id, body)
            if res.get("cancel"):
                job.cancelled.set()
        except LeaseLost:
            job.lost.set()
        except Exception:
            pass  # the next beat tries again; the lease is three beats long

    def _drain(self):
        deadline = time.monotonic() + self.grace_s
        for _ in self._threads:
            self._todo.put(None)
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        # Answers of the handlers that finished go out before anything is released.
        self._answers.put(None)
        if self._answerer is not None:
            self._answerer.join(max(0.5, deadline - time.monotonic()))
        with self._lock:
            left = [j for j in self._held.values() if not j.answered]
        for job in left:
            try:
                self._post("/api/v1/workers/jobs/%s/release" % job.job_id, {})
            except Exception:
                pass  # its lease runs out instead

    # --- HTTP ---------------------------------------------------------------------------

    def _connection(self, timeout):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
            conn = cls(self._url.hostname, self._url.port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _post(self, path, body, timeout=30.0):
        data = json.dumps(body).encode("utf-8")
        headers = {"Authorization": "Token %s" % self._token, "Content-Type": "application/json", "Connection": "keep-alive"}
        for attempt in (1, 2):
            conn = self._connection(timeout)
            try:
                conn.request("POST", path, body=data, headers=headers)
                res = conn.getresponse()
                raw = res.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                # Once stopping, a request cut short is not sent again (a claim hung up on).
                if attempt == 2 or self._stopping.is_set():
                    raise
        parsed = json.loads(raw.decode("utf-8") or "{}")
        if res.status >= 400:
            err = parsed.get("error") or {}
            cls = LeaseLost if err.get("code") == "LEASE_LOST" else RunstateError
            raise cls(res.status, err.get("code", "HTTP_%d" % res.status), err.get("message", ""))
        return parsed
