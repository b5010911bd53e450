import Database from 'better-sqlite3';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { events, RUN_MACHINE } from '../../../service/events.js';
import { TraceWriter } from '../../../service/trace/trace-writer.js';
import { engineOn, isTransition, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';

const ACME = { accountId: 'acme', siteId: 'site-5' };
const silent = pino({ level: 'silent' });

describe('trace files', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('writes the JSONL trace, the run log, one log per stage and a diagnostic line', async () => {
    const gate = gatedPipeline('gated', [2, 0, 1]);
    const { engine, store, next } = engineOn(dir.path, [gate.pipeline]);
    const traces = new TraceWriter({ dataDir: dir.path, store, logger: silent });
    engine.onEvents((run, events) => traces.write(run, events));
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.finish();
    await gate.inFlight(1);
    await engine.command(id, 'pause', { by: 'ops-site-5', reason: 'provider outage' });
    await gate.finish();
    await next(isTransition('run', 'paused'));
    await engine.command(id, 'resume', { by: 'ops-site-5' });
    await gate.finish();
    await engine.whenRetired(id);
    await traces.flush();

    const runDir = join(dir.path, 'logs', 'acme', 'site-5', id);
    expect(readdirSync(runDir).sort()).toEqual(['automation_run.log', 'run_trace.jsonl', 'stage_1.log', 'stage_2.log', 'stage_3.log']);
    const log = await store.readEvents(id, 0);
    expect(readFileSync(join(runDir, 'run_trace.jsonl'), 'utf8')).toBe(log.map((e) => `${JSON.stringify(e)}\n`).join(''));

    const runLog = readFileSync(join(runDir, 'automation_run.log'), 'utf8').trimEnd().split('\n');
    expect(runLog).toHaveLength(log.length);
    expect(runLog[0]).toMatch(new RegExp(`^\\[\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\] INFO: Run ${id} started \\(trigger: manual\\)$`));
    expect(runLog).toContainEqual(expect.stringContaining('Command pause by ops-site-5 (reason: provider outage)'));
    expect(runLog).toContainEqual(expect.stringContaining('Stage 1: running → pausing (pause_requested)'));
    expect(runLog).toContainEqual(expect.stringContaining('Stage 1: 2/2 processed #102 "item 1.2"'));
    expect(runLog).toContainEqual(expect.stringContaining('Stage 1 complete: 2 processed, 0 failed in 0s, 2 credits'));

    const stage2 = readFileSync(join(runDir, 'stage_2.log'), 'utf8');
    expect(stage2).toContain('Stage 2: loading → empty (items_loaded)');
    expect(stage2).not.toContain('Stage 1');
    const diagnostic = readFileSync(join(dir.path, 'logs', 'automation_diagnostic.log'), 'utf8').trimEnd().split('\n');
    expect(diagnostic).toHaveLength(1);
    expect(diagnostic[0]).toContain(`${id} completed: gated for acme/site-5, 3 items processed, 0 failed, ${log.length} events`);
    expect(await store.listUntraced()).toEqual([]);
  });

  it('keeps one event on one line whatever a title contains', async () => {
    const { store } = engineOn(dir.path, []);
    const run = await store.createRun({ runId: 'run_20250101_000000_manual', ...ACME, pipeline: 'p', trigger: 'manual', options: {}, createdAt: new Date().toISOString() });
    const res = await store.commit(run.runId, {
      events: [{ event: 'activity_log', message: 'line one\nINFO: forged line\r\n', timestamp: new Date().toISOString() }],
    });
    const traces = new TraceWriter({ dataDir: dir.path, store, logger: silent });
    traces.write(run, res.events);
    await traces.flush();
    const text = readFileSync(join(TraceWriter.runDir(dir.path, run), 'automation_run.log'), 'utf8');
    expect(text.trimEnd().split('\n')).toHaveLength(1);
  });

  it('writes the diagnostic line a crash left out after the trace was whole, and only once', async () => {
    const gate = gatedPipeline('gated', [1]);
    const { engine, store } = engineOn(dir.path, [gate.pipeline]);
    const traces = new TraceWriter({ dataDir: dir.path, store, logger: silent });
    engine.onEvents((run, events) => traces.write(run, events));
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.finish();
    await engine.whenRetired(id);
    await traces.flush();
    const diagnostic = join(dir.path, 'logs', 'automation_diagnostic.log');
    // As if killed after the trace was written but before its diagnostic line and mark.
    rmSync(diagnostic);
    const untrace = () => new Database(join(dir.path, 'runstate.db')).prepare('UPDATE runs SET traced_seq = 0').run();
    untrace();
    await new TraceWriter({ dataDir: dir.path, store, logger: silent }).repair();
    expect(readFileSync(diagnostic, 'utf8').trimEnd().split('\n')).toHaveLength(1);
    // As if killed after the diagnostic line but before the mark: no second line.
    untrace();
    await new TraceWriter({ dataDir: dir.path, store, logger: silent }).repair();
    expect(readFileSync(diagnostic, 'utf8').trimEnd().split('\n')).toHaveLength(1);
    expect(await store.listUntraced()).toEqual([]);
  });

  it('writes, at restart, the diagnostic line of a finish a crash left out in a run retry_failed has revived, and a line per finish in a caught-up batch', async () => {
    const { store } = engineOn(dir.path, []);
    const run = await store.createRun({ runId: 'run_20250101_000000_manual', ...ACME, pipeline: 'p', trigger: 'manual', options: {}, createdAt: new Date().toISOString() });
    const at = new Date().toISOString();
    const to = (from: string, to_state: string, trigger: string) =>
      events.stateChange({ machine_name: RUN_MACHINE, payload: { from_state: from, to_state, event_trigger: trigger, timestamp: Date.now() / 1000 } }, at);
    // Finished, then revived by retry_failed: the snapshot says a retry is under way.
    const retrying = { status: 'running' as const, snapshot: { context: { retry: { queue: [], then: 'completed', current: 1, error: null } } } };
    const first = await store.commit(run.runId, { events: [to('idle', 'running', 'start'), to('running', 'completed', 'stage_completed')] });
    const revived = await store.commit(run.runId, { events: [events.command({ command: 'retry_failed', by: 'admin' }, at), to('completed', 'running', 'retry_failed_requested')], ...retrying });
    // As if killed after the trace had every event but before the finish's diagnostic line.
    const traceDir = TraceWriter.runDir(dir.path, run);
    mkdirSync(traceDir, { recursive: true });
    writeFileSync(join(traceDir, 'run_trace.jsonl'), [...first.events, ...revived.events].map((e) => `${JSON.stringify(e)}\n`).join(''));
    const diagnostic = join(dir.path, 'logs', 'automation_diagnostic.log');
    await new TraceWriter({ dataDir: dir.path, store, logger: silent }).repair();
    expect(readFileSync(diagnostic, 'utf8').trimEnd().split('\n')).toEqual([expect.stringContaining(`${run.runId} completed: p for acme/site-5, 0 items processed, 0 failed, 2 events in `)]);

    // It finishes again; both finishes reach the trace in one caught-up batch: a line for each.
    await store.commit(run.runId, { events: [to('running', 'completed', 'stage_completed')], status: 'completed', snapshot: { context: { retry: null } } });
    rmSync(diagnostic);
    writeFileSync(join(traceDir, 'run_trace.jsonl'), '');
    await new TraceWriter({ dataDir: dir.path, store, logger: silent }).repair();
    const lines = readFileSync(diagnostic, 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => /, (\d+) events in /.exec(l)?.[1])).toEqual(['2', '5']);
  });

  it('repairs a trace left torn by a crash to match the event log', async () => {
    const gate = gatedPipeline('gated', [3]);
    const { engine, store } = engineOn(dir.path, [gate.pipeline]);
    const traces = new TraceWriter({ dataDir: dir.path, store, logger: silent });
    engine.onEvents((run, events) => traces.write(run, events));
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.finish();
    await gate.inFlight(1);
    await traces.flush();
    const path = join(TraceWriter.runDir(dir.path, { ...ACME, runId: id }), 'run_trace.jsonl');
    // A crash cut the last lines and left half a line behind.
    const whole = readFileSync(path, 'utf8');
    truncateSync(path, whole.lastIndexOf('\n', whole.length - 2) + 1);
    appendFileSync(path, '{"event":"stage_item_proc');
    expect(statSync(path).size).toBeLessThan(whole.length + 30);

    const repaired = new TraceWriter({ dataDir: dir.path, store, logger: silent });
    expect(await repaired.repair()).toBe(1);
    const log = await store.readEvents(id, 0);
    expect(readFileSync(path, 'utf8')).toBe(log.map((e) => `${JSON.stringify(e)}\n`).join(''));
    await engine.stop();
  });

  it('writes batches that come close together in one go, in seq order, and flush does not wait for the delay', async () => {
    const { store } = engineOn(dir.path, []);
    const run = await store.createRun({ runId: 'run_20250101_000000_manual', ...ACME, pipeline: 'p', trigger: 'manual', options: {}, createdAt: new Date().toISOString() });
    // A delay no test would wait out: only flush can have written the files.
    const traces = new TraceWriter({ dataDir: dir.path, store, logger: silent, coalesceMs: 60_000 });
    const written: number[] = [];
    for (let i = 1; i <= 50; i++) {
      const res = await store.commit(run.runId, { events: [{ event: 'activity_log', stage: 1, message: `step ${i}`, timestamp: new Date().toISOString() }] });
      traces.write(run, res.events);
      written.push(...res.events.map((e) => e.seq));
    }
    expect(traces.lagEvents()).toBe(50);
    const started = performance.now();
    await traces.flush();
    expect(performance.now() - started).toBeLessThan(30_000);
    const path = join(TraceWriter.runDir(dir.path, run), 'run_trace.jsonl');
    expect(readFileSync(path, 'utf8')).toBe((await store.readEvents(run.runId, 0)).map((e) => `${JSON.stringify(e)}\n`).join(''));
    expect(readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual(written);
    expect(readFileSync(join(TraceWriter.runDir(dir.path, run), 'stage_1.log'), 'utf8').trimEnd().split('\n')).toHaveLength(50);
    expect(traces.lagEvents()).toBe(0);
  });

  it('writes queued events by itself once the coalescing delay is over', async () => {
    const { store } = engineOn(dir.path, []);
    const run = await store.createRun({ runId: 'run_20250101_000000_manual', ...ACME, pipeline: 'p', trigger: 'manual', options: {}, createdAt: new Date().toISOString() });
    const traces = new TraceWriter({ dataDir: dir.path, store, logger: silent, coalesceMs: 5 });
    const res = await store.commit(run.runId, { events: [{ event: 'activity_log', message: 'hello', timestamp: new Date().toISOString() }] });
    traces.write(run, res.events);
    // The lag is 0 once the trace line is down; the run log is appended just after it.
    await vi.waitFor(() => expect(traces.lagEvents()).toBe(0), { timeout: 10_000, interval: 10 });
    await vi.waitFor(() => expect(readFileSync(join(TraceWriter.runDir(dir.path, run), 'automation_run.log'), 'utf8')).toContain('INFO: hello'), { timeout: 10_000, interval: 10 });
  });
});
