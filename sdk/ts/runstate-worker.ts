// A runstate worker for Node (20+) in a few lines: claim jobs of a queue, run a handler per
// stage, answer (docs/workers.md). No dependencies: copy this file next to your code.
//
//   const worker = new Worker({ url: 'http://127.0.0.1:3000', token, queue: 'faces' });
//   worker.load('cropping_faces', async (job) => [{ id: 1, title: 'Image 1' }]);
//   worker.item('cropping_faces', async (job) => ({ cost: 0.1 })); // job.signal aborts on cancel
//   await worker.run(); // until SIGTERM/SIGINT or worker.stop()
//
// Answers that handlers finish together go out in one request (POST /api/v1/workers/answers).
import { hostname } from 'node:os';

export interface JobData {
  job_id: string;
  kind: 'load' | 'item';
  run_id: string;
  site_id: string;
  pipeline: string;
  stage: number;
  stage_key: string;
  item?: { id: string | number; title: string; [k: string]: unknown };
  attempt: number;
  idempotency_key: string;
  options: Record<string, unknown>;
  lease_ms: number;
}

/** One claimed job; `signal` aborts when the run is cancelled or the lease is lost. */
export interface Job extends JobData {
  signal: AbortSignal;
  /** Extends the lease now (the worker also does it on its own), with an optional message. */
  heartbeat(message?: string): Promise<void>;
}

export type ItemHandler = (job: Job) => Promise<{ cost?: number; output?: unknown } | void>;
export type LoadHandler = (job: Job) => Promise<{ id: string | number; title?: string; [k: string]: unknown }[]>;

/** Throw from a handler to fail the attempt; `retryable: false` fails the item at once. */
export class Fail extends Error {
  readonly retryable: boolean;
  constructor(message: string, options: { retryable?: boolean } = {}) {
    super(message);
    this.name = 'Fail';
    this.retryable = options.retryable !== false;
  }
}

/** An error answer of the service (docs/api.md): `status`, `code`, `message`. */
export class RunstateError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = 'RunstateError';
  }
}

export interface WorkerOptions {
  /** The service, e.g. `http://127.0.0.1:3000`. */
  url: string;
  /** A worker token (or the admin token). */
  token: string;
  queue: string;
  /** [`<hostname>-<pid>`] shown in `GET /api/v1/workers/`. */
  workerId?: string;
  /** [1] jobs run at once. */
  concurrency?: number;
  /** [16] most jobs one claim asks for. */
  maxClaim?: number;
  /** [20000] how long one claim waits for a job (at most 30000). */
  waitMs?: number;
  /** [10000] on stop, how long running handlers may take before their jobs are released. */
  graceMs?: number;
  /** [true] stop on SIGTERM and SIGINT. */
  handleSignals?: boolean;
}

/** The most answers one `POST /answers` takes. */
const MAX_ANSWERS = 100;

interface Held {
  data: JobData;
  abort: AbortController;
  message: string | undefined;
  answered: boolean;
  done: Promise<void>;
}

export class Worker {
  readonly workerId: string;
  readonly #o: Required<Omit<WorkerOptions, 'workerId'>>;
  readonly #items = new Map<string | null, ItemHandler>();
  readonly #loads = new Map<string | null, LoadHandler>();
  readonly #held = new Map<string, Held>();
  readonly #lastBeat = new Map<string, number>();
  /** Answers on their way: sent together at the end of the turn they were given in. */
  readonly #answers: { held: Held; what: 'complete' | 'fail'; body: unknown; sent: () => void }[] = [];
  #batchAnswers = true;
  #stopping = false;
  #wake: (() => void) | undefined;
  #poll: AbortController | undefined;

  constructor(options: WorkerOptions) {
    if (!/^https?:\/\//.test(options.url)) throw new TypeError(`Expected \`url\` to be an http(s) URL, got ${JSON.stringify(options.url)}.`);
    if (!options.token) throw new TypeError('Expected `token` to be a worker token.');
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`Expected \`concurrency\` to be a positive integer, got ${concurrency}.`);
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}`;
    this.#o = {
      url: options.url.replace(/\/$/, ''),
      token: options.token,
      queue: options.queue,
      concurrency,
      maxClaim: Math.max(1, Math.min(options.maxClaim ?? 16, 100)),
      waitMs: Math.max(0, Math.min(options.waitMs ?? 20_000, 30_000)),
      graceMs: options.graceMs ?? 10_000,
      handleSignals: options.handleSignals ?? true,
    };
  }

  /** The handler of the items of `stage` (a stage key; none: any stage). */
  item(stage: string | null, handler: ItemHandler): this {
    this.#items.set(stage, handler);
    return this;
  }

  /** The handler that lists the items of `stage` (a stage key; none: any stage). */
  load(stage: string | null, handler: LoadHandler): this {
    this.#loads.set(stage, handler);
    return this;
  }

  /** Stops claiming; running handlers get `graceMs` to finish, then their jobs are released. */
  stop(): void {
    this.#stopping = true;
    this.#poll?.abort();
    this.#wake?.();
  }

  /** Claims and runs jobs until `stop()`. */
  async run(): Promise<void> {
    const onSignal = () => this.stop();
    if (this.#o.handleSignals) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    const beat = setInterval(() => void this.#beatAll(), 250);
    try {
      while (!this.#stopping) {
        const free = this.#o.concurrency - this.#held.size;
        if (free <= 0) {
          await new Promise<void>((r) => (this.#wake = r));
          continue;
        }
        let jobs: JobData[];
        try {
          this.#poll = new AbortController();
          const res = await this.#post('/api/v1/workers/claim', { queue: this.#o.queue, worker_id: this.workerId, max: Math.min(free, this.#o.maxClaim), wait_ms: this.#o.waitMs }, this.#poll.signal);
          jobs = (res.jobs as JobData[] | undefined) ?? [];
        } catch {
          if (!this.#stopping) await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        for (const data of jobs) this.#start(data);
      }
    } finally {
      await this.#drain();
      clearInterval(beat);
      if (this.#o.handleSignals) {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    }
  }

  #start(data: JobData): void {
    const abort = new AbortController();
    const held: Held = { data, abort, message: undefined, answered: false, done: Promise.resolve() };
    this.#held.set(data.job_id, held);
    const job: Job = { ...data, signal: abort.signal, heartbeat: async (message) => {
      if (message !== undefined) held.message = message;
      await this.#beat(held);
    } };
    held.done = this.#work(job, held).finally(() => {
      this.#held.delete(data.job_id);
      this.#lastBeat.delete(data.job_id);
      this.#wake?.();
    });
  }

  async #work(job: Job, held: Held): Promise<void> {
    const handlers: Map<string | null, ItemHandler | LoadHandler> = job.kind === 'load' ? this.#loads : this.#items;
    const handler = handlers.get(job.stage_key) ?? handlers.get(null);
    if (!handler) return this.#answer(held, 'fail', { error: `no ${job.kind} handler for stage ${job.stage_key} on this worker`, retryable: true });
    let result: unknown;
    try {
      result = await handler(job);
    } catch (err) {
      if (held.abort.signal.aborted) return;
      const retryable = !(err instanceof Fail) || err.retryable;
      const message = err instanceof Error ? `${err instanceof Fail ? '' : `${err.name}: `}${err.message}` : String(err);
      return this.#answer(held, 'fail', { error: message || 'failed', retryable });
    }
    if (held.abort.signal.aborted) return;
    await this.#answer(held, 'complete', job.kind === 'load' ? { items: result ?? [] } : (result ?? {}));
  }

  /**
   * Answers the job. The answers handlers finish in one turn of the event loop go out together,
   * in one `POST /answers` (docs/workers.md, "Answering several jobs at once").
   */
  #answer(held: Held, what: 'complete' | 'fail', body: unknown): Promise<void> {
    return new Promise((resolve) => {
      if (this.#answers.length === 0) setImmediate(() => void this.#sendAnswers());
      this.#answers.push({ held, what, body, sent: resolve });
    });
  }

  async #sendAnswers(): Promise<void> {
    const batch = this.#answers.splice(0, MAX_ANSWERS);
    if (this.#answers.length > 0) setImmediate(() => void this.#sendAnswers());
    try {
      if (this.#batchAnswers) {
        try {
          await this.#post('/api/v1/workers/answers', { answers: batch.map((a) => ({ job_id: a.held.data.job_id, [a.what]: a.body })) });
          return; // each entry's own verdict (LEASE_LOST: the job is offered again) needs nothing more here
        } catch (err) {
          // A service without POST /answers (404), or a batch it refuses whole: one by one.
          if (err instanceof RunstateError && err.status === 404) this.#batchAnswers = false;
        }
      }
      await Promise.all(batch.map((a) => this.#answerOne(a.held, a.what, a.body)));
    } finally {
      for (const a of batch) {
        a.held.answered = true;
        a.sent();
      }
    }
  }

  async #answerOne(held: Held, what: 'complete' | 'fail', body: unknown): Promise<void> {
    try {
      await this.#post(`/api/v1/workers/jobs/${held.data.job_id}/${what}`, body);
    } catch {
      // LEASE_LOST or the service unreachable: the job is offered again; nothing more to do here.
    }
  }

  async #beatAll(): Promise<void> {
    const now = Date.now();
    for (const held of this.#held.values()) {
      const every = held.data.lease_ms / 3;
      if (held.answered || now - (this.#lastBeat.get(held.data.job_id) ?? now - every) < every) continue;
      this.#lastBeat.set(held.data.job_id, now);
      void this.#beat(held);
    }
  }

  async #beat(held: Held): Promise<void> {
    try {
      const res = await this.#post(`/api/v1/workers/jobs/${held.data.job_id}/heartbeat`, held.message === undefined ? {} : { message: held.message });
      if (res.cancel === true) held.abort.abort(new Error(`run ${held.data.run_id} was cancelled`));
    } catch (err) {
      if (err instanceof RunstateError && err.code === 'LEASE_LOST') held.abort.abort(err);
    }
  }

  async #drain(): Promise<void> {
    const running = [...this.#held.values()];
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(running.map((h) => h.done)), new Promise((r) => (timer = setTimeout(r, this.#o.graceMs)))]);
    clearTimeout(timer);
    await Promise.all(
      [...this.#held.values()]
        .filter((h) => !h.answered)
        .map(async (h) => {
          h.abort.abort(new Error('the worker is stopping'));
          await this.#post(`/api/v1/workers/jobs/${h.data.job_id}/release`, {}).catch(() => undefined);
        }),
    );
  }

  async #post(path: string, body: unknown, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.#o.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Token ${this.#o.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
    const parsed = (await res.json().catch(() => ({}))) as Record<string, unknown> & { error?: { code?: string; message?: string } };
    if (!res.ok) throw new RunstateError(res.status, parsed.error?.code ?? `HTTP_${res.status}`, parsed.error?.message ?? '');
    return parsed;
  }
}
