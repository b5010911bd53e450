// The door's long polls (service/workers/door.ts): a job queued wakes one waiting poll, the one
// that asked for the most, not every poll on the queue (docs/workers.md, "Long polls").
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Principal } from '../../../service/auth/tokens.js';
import type { ClaimedJob, NewJob } from '../../../service/store/jobs.js';
import { SqliteJobStore } from '../../../service/store/jobs-sqlite.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { WorkerDoor } from '../../../service/workers/door.js';
import { workerMetrics } from '../../../service/workers/metrics.js';
import { tempDir } from '../../helpers/engine.js';

const ADMIN: Principal = { name: 'admin', admin: true, accountId: null, siteIds: null };

/** The real SQLite job store, counting the claims it is asked for. */
class CountingJobStore extends SqliteJobStore {
  claims = 0;
  override async claim(queue: string, workerId: string, max: number): Promise<ClaimedJob[]> {
    this.claims++;
    return super.claim(queue, workerId, max);
  }
}

const job = (n: number): NewJob => ({
  runId: 'run-1',
  stage: 1,
  stageKey: 'only',
  kind: 'item',
  itemId: String(n),
  item: { id: n, title: `item ${n}` },
  attempt: 1,
  queue: 'faces',
  siteId: '5',
  pipeline: 'p',
  options: {},
  idempotencyKey: `run-1:1:${n}`,
  leaseMs: 30_000,
});

/** Every microtask of the turn that woke the polls has run once the next macrotask does. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

let dir: ReturnType<typeof tempDir>;
let store: SqliteStore;
let jobs: CountingJobStore;
let door: WorkerDoor;
/** The polls a test started: each answers before the database closes. */
const open: { answer: Promise<number[]> }[] = [];

beforeEach(() => {
  dir = tempDir('rs-door-');
  store = new SqliteStore({ filename: join(dir.path, 'runstate.db') });
  jobs = new CountingJobStore(store.connection);
  const registry = new Registry();
  // pollMs far beyond the test: a poll claims only when it starts and when it is woken.
  door = new WorkerDoor({ jobs, metrics: workerMetrics(registry, jobs, () => []), onAnswered: () => undefined, pollMs: 600_000 });
});

afterEach(async () => {
  door.close();
  await Promise.all(open.splice(0).map((p) => p.answer));
  await store.close();
  dir.remove();
});

/** A long poll of `max` jobs, and its answer's item ids once it answers. */
function poll(workerId: string, max: number) {
  const answer = door.claim(ADMIN, { queue: 'faces', worker_id: workerId, max, wait_ms: 30_000 }).then((r) => (r.jobs as { item: { id: number } }[]).map((j) => j.item.id));
  let settled: number[] | undefined;
  void answer.then((ids) => (settled = ids));
  const p = { answer, settled: () => settled };
  open.push(p);
  return p;
}

/** Queues jobs as the owner's queue does: `queued` once per job. */
async function queue(...ns: number[]): Promise<void> {
  await Promise.all(ns.map((n) => jobs.ensureJob(job(n))));
  for (const _ of ns) door.queued('faces');
}

describe('WorkerDoor long polls', () => {
  it('hands a job queued to one waiting poll: the others sleep on without claiming', async () => {
    const polls = [poll('a', 1), poll('b', 1), poll('c', 1)];
    await nextTurn();
    expect(jobs.claims).toBe(3); // each poll looked once on arrival, found nothing and waits

    await queue(1);
    const ids = await Promise.race(polls.map((p) => p.answer));
    await nextTurn();
    expect(ids).toEqual([1]);
    expect(polls.filter((p) => p.settled() !== undefined)).toHaveLength(1);
    expect(jobs.claims).toBe(4); // the woken poll's claim alone
  });

  it('wakes as many polls as it takes to hand out every job queued', async () => {
    const polls = [poll('a', 1), poll('b', 1), poll('c', 1), poll('d', 1)];
    await nextTurn();
    await queue(1, 2, 3);
    const got = await Promise.all(polls.slice(0, 3).map((p) => p.answer));
    await nextTurn();
    expect(got.flat().sort()).toEqual([1, 2, 3]);
    // Three jobs woke three polls; the fourth waits on, and never claimed again.
    expect(polls[3]!.settled()).toBeUndefined();
    expect(jobs.claims).toBe(4 + 3);
  });

  it('wakes nobody for jobs a claim took before the wake', async () => {
    const waiting = poll('a', 1);
    await nextTurn();
    await queue(1);
    // In the same turn, before the wake: a claim that does not wait takes the job.
    const took = door.claim(ADMIN, { queue: 'faces', worker_id: 'b', max: 1 });
    expect(((await took).jobs as { item: { id: number } }[]).map((j) => j.item.id)).toEqual([1]);
    await nextTurn();
    expect(waiting.settled()).toBeUndefined();
    expect(jobs.claims).toBe(2); // the waiting poll was not woken to find nothing
  });

  it('wakes first the poll that asked for the most, so that jobs queued together go out in one answer', async () => {
    const small = poll('small', 1);
    const big = poll('big', 4);
    await nextTurn();
    await queue(1, 2, 3, 4);
    expect(await big.answer).toEqual([1, 2, 3, 4]);
    await nextTurn();
    expect(small.settled()).toBeUndefined();
    // A job queued later goes to the poll still waiting.
    await queue(5);
    expect(await small.answer).toEqual([5]);
  });

  it('lets a long poll wait at once on a queue found empty with nothing queued since; a claim without wait_ms still looks', async () => {
    const first = poll('a', 2);
    await nextTurn();
    expect(jobs.claims).toBe(1);
    const second = poll('b', 2); // the claim of a POST /answers, most often
    await nextTurn();
    expect(jobs.claims).toBe(1);
    expect(await door.claim(ADMIN, { queue: 'faces', worker_id: 'c', max: 1 })).toEqual({ jobs: [] });
    expect(jobs.claims).toBe(2);

    // A job queued since: the next long poll looks first, and takes it.
    await jobs.ensureJob(job(1));
    door.queued('faces');
    expect(await poll('d', 1).answer).toEqual([1]);
    expect(jobs.claims).toBe(3);
    await nextTurn();
    expect([first.settled(), second.settled()]).toEqual([undefined, undefined]);
  });

  it('ends every waiting poll with no job when the door closes', async () => {
    const polls = [poll('a', 2), poll('b', 2)];
    await nextTurn();
    door.close();
    expect(await Promise.all(polls.map((p) => p.answer))).toEqual([[], []]);
  });
});
