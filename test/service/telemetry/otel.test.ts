import { createServer, type Server } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine } from '../../../service/engine/engine.js';
import type { PipelineDefinition } from '../../../service/pipelines/types.js';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { ATTR, createTelemetry } from '../../../service/telemetry/otel.js';
import { parseTraceParent } from '../../../service/telemetry/traceparent.js';
import { ADMIN, appOn, auth } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: number | string; boolValue?: boolean } }[];
  status?: { code?: number; message?: string };
  events?: { name: string }[];
}

/** An OTLP/HTTP (JSON) traces endpoint: keeps every span it is sent. */
async function otlpReceiver() {
  const spans: OtlpSpan[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const doc = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes.find((a) => a.key === key)?.value;
  if (!v) return undefined;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.stringValue ?? v.boolValue;
}

/** Two stages; item `flaky` of stage 1 throws on its first two attempts. */
const flakyPipeline: PipelineDefinition<Record<string, never>> = {
  name: 'flaky',
  parseOptions: () => ({}),
  retry: { attempts: 3, backoffMs: 0, backoffMaxMs: 0 },
  stages: [
    {
      key: 'one',
      name: 'One',
      loadItems: async () => [
        { id: 'steady', title: 'Steady' },
        { id: 'flaky', title: 'Flaky' },
      ],
      processItem: async (item, ctx) => {
        if (item.id === 'flaky' && ctx.attempt < 3) throw new Error(`flaky attempt ${ctx.attempt}`);
        return { cost: 0 };
      },
    },
    { key: 'two', name: 'Two', loadItems: async () => [{ id: 7, title: 'Seven' }], processItem: async () => ({ cost: 0 }) },
  ],
};

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

describe('OpenTelemetry', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('exports a span per run, stage and item attempt, children of the caller’s trace', async () => {
    const receiver = await otlpReceiver();
    const telemetry = await createTelemetry({ tracesUrl: receiver.url, serviceName: 'runstate-test' });
    const store = new SqliteStore({ filename: `${dir.path}/runstate.db` });
    const engine = new Engine({ store, pipelines: [flakyPipeline], telemetry });
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'flaky', traceParent: `00-${TRACE_ID}-${PARENT_SPAN}-01` });
    await engine.whenRetired(run.run_id);
    await telemetry!.shutdown();
    await store.close();
    await receiver.close();

    const spans = receiver.spans;
    const runSpan = spans.find((s) => s.name === 'run flaky');
    expect(runSpan).toBeDefined();
    expect(runSpan!.traceId).toBe(TRACE_ID);
    expect(runSpan!.parentSpanId).toBe(PARENT_SPAN);
    expect(attr(runSpan!, ATTR.runId)).toBe(run.run_id);
    expect(attr(runSpan!, ATTR.siteId)).toBe('site-5');
    expect(attr(runSpan!, ATTR.pipeline)).toBe('flaky');
    expect(attr(runSpan!, ATTR.outcome)).toBe('completed');
    for (const s of spans) expect(s.traceId).toBe(TRACE_ID);

    const stages = spans.filter((s) => s.name.startsWith('stage '));
    expect(stages.map((s) => s.name).sort()).toEqual(['stage 1 One', 'stage 2 Two']);
    for (const s of stages) {
      expect(s.parentSpanId).toBe(runSpan!.spanId);
      expect(attr(s, ATTR.outcome)).toBe('completed');
    }
    const stage1 = stages.find((s) => attr(s, ATTR.stage) === 1)!;
    const stage2 = stages.find((s) => attr(s, ATTR.stage) === 2)!;

    const flaky = spans.filter((s) => s.name === 'item flaky').sort((a, b) => Number(attr(a, ATTR.attempt)) - Number(attr(b, ATTR.attempt)));
    expect(flaky.map((s) => attr(s, ATTR.attempt))).toEqual([1, 2, 3]);
    expect(flaky.map((s) => attr(s, ATTR.outcome))).toEqual(['error', 'error', 'done']);
    for (const s of flaky) {
      expect(s.parentSpanId).toBe(stage1.spanId);
      expect(attr(s, ATTR.itemId)).toBe('flaky');
      expect(attr(s, ATTR.stage)).toBe(1);
    }
    // Errors are recorded: status ERROR (2) with the message, and an exception event.
    expect(flaky[0]!.status).toMatchObject({ code: 2, message: 'flaky attempt 1' });
    expect(flaky[0]!.events?.map((e) => e.name)).toContain('exception');
    expect(spans.filter((s) => s.name === 'item steady')).toHaveLength(1);
    const seven = spans.filter((s) => s.name === 'item 7');
    expect(seven).toHaveLength(1);
    expect(seven[0]!.parentSpanId).toBe(stage2.spanId);
    expect(spans).toHaveLength(1 + 2 + 3 + 1 + 1);
  });

  it('a run without a traceparent starts a trace of its own; a failed run records its error', async () => {
    const receiver = await otlpReceiver();
    const telemetry = await createTelemetry({ tracesUrl: receiver.url });
    const store = new SqliteStore({ filename: `${dir.path}/runstate.db` });
    const broken: PipelineDefinition<Record<string, never>> = {
      name: 'broken',
      parseOptions: () => ({}),
      stages: [{ key: 'load', name: 'Load', loadItems: async () => Promise.reject(new Error('the source is gone')), processItem: async () => ({ cost: 0 }) }],
    };
    const engine = new Engine({ store, pipelines: [broken], telemetry });
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'broken' });
    for (let i = 0; i < 200 && (await store.getRun(run.run_id))?.status !== 'failed'; i++) await new Promise((r) => setTimeout(r, 10));
    await engine.stop();
    await telemetry!.shutdown();
    await store.close();
    await receiver.close();
    const runSpan = receiver.spans.find((s) => s.name === 'run broken')!;
    expect(runSpan.parentSpanId ?? '').toBe('');
    expect(attr(runSpan, ATTR.outcome)).toBe('failed');
    expect(runSpan.status?.code).toBe(2);
    const stage = receiver.spans.find((s) => s.name === 'stage 1 Load')!;
    expect(stage.parentSpanId).toBe(runSpan.spanId);
    expect(attr(stage, ATTR.outcome)).toBe('failed');
    expect(stage.status).toMatchObject({ code: 2 });
  });

  it('puts a run resumed after a restart in the same trace, its first run span interrupted', async () => {
    const receiver = await otlpReceiver();
    let hang = true;
    const slow: PipelineDefinition<Record<string, never>> = {
      name: 'slow',
      parseOptions: () => ({}),
      stages: [
        {
          key: 'one',
          name: 'One',
          loadItems: async () => [{ id: 1, title: 'One' }],
          // Until the restart, the item waits to be aborted.
          processItem: async (_item, ctx) =>
            hang ? new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')))) : { cost: 0 },
        },
      ],
    };
    const filename = `${dir.path}/runstate.db`;
    const t1 = await createTelemetry({ tracesUrl: receiver.url });
    const s1 = new SqliteStore({ filename });
    const e1 = new Engine({ store: s1, pipelines: [slow], telemetry: t1 });
    const run = await e1.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'slow', traceParent: `00-${TRACE_ID}-${PARENT_SPAN}-01` });
    for (let i = 0; i < 200 && (await s1.ledger(run.run_id)).length === 0 && !(await s1.readEvents(run.run_id, 0)).some((e) => e.event === 'stage_start'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await e1.stop();
    await t1!.shutdown();
    await s1.close();

    hang = false;
    const t2 = await createTelemetry({ tracesUrl: receiver.url });
    const s2 = new SqliteStore({ filename });
    const e2 = new Engine({ store: s2, pipelines: [slow], telemetry: t2 });
    await e2.recover();
    e2.start();
    await e2.whenRetired(run.run_id);
    await e2.stop();
    await t2!.shutdown();
    await s2.close();
    await receiver.close();

    const runSpans = receiver.spans.filter((s) => s.name === 'run slow');
    expect(runSpans.map((s) => attr(s, ATTR.outcome))).toEqual(['interrupted', 'completed']);
    expect(runSpans.map((s) => attr(s, ATTR.resumed))).toEqual([false, true]);
    for (const s of runSpans) {
      expect(s.traceId).toBe(TRACE_ID);
      expect(s.parentSpanId).toBe(PARENT_SPAN);
    }
    const attempts = receiver.spans.filter((s) => s.name === 'item 1');
    expect(attempts.map((s) => attr(s, ATTR.outcome)).sort()).toEqual(['done', 'error']);
  });

  it('creates nothing when OTEL_EXPORTER_OTLP_ENDPOINT is unset', async () => {
    expect(await createTelemetry({ tracesUrl: null })).toBeNull();
  });

  it('keeps a valid traceparent of POST /runs with the run, and ignores an invalid one', async () => {
    const { app, store, engine } = await appOn(dir.path, [faceProcessorPipeline]);
    const start = (traceparent: string) =>
      app.inject({
        method: 'POST',
        url: '/api/v1/automation/runs',
        headers: { ...auth(ADMIN), traceparent },
        payload: { site_id: 'site-5', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 0 } },
      });
    const ok = await start(`00-${TRACE_ID}-${PARENT_SPAN}-01`);
    expect(ok.statusCode).toBe(201);
    expect((await store.getRun(ok.json().data.run_id))?.traceParent).toBe(`00-${TRACE_ID}-${PARENT_SPAN}-01`);
    const bad = await start(`00-${'0'.repeat(32)}-${PARENT_SPAN}-01`);
    expect(bad.statusCode).toBe(201);
    expect((await store.getRun(bad.json().data.run_id))?.traceParent).toBeNull();
    expect(parseTraceParent('ff-' + TRACE_ID + '-' + PARENT_SPAN + '-01')).toBeUndefined();
    expect(parseTraceParent(`01-${TRACE_ID}-${PARENT_SPAN}-01-future`)).toMatchObject({ traceId: TRACE_ID });
    await engine.stop();
    await app.close();
    await store.close();
  });
});
