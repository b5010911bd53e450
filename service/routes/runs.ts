import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { RUN_STATES } from '../../machines/index.js';
import { type BulkResult } from '../engine/commands.js';
import { COMMANDS, type Command, type Engine } from '../engine/engine.js';
import { RunstateError, asRunstateError } from '../errors.js';
import { idParam, principalOf, requireSite, runIdParam } from '../http.js';
import type { Store } from '../store/store.js';
import { formatTraceParent, parseTraceParent } from '../telemetry/traceparent.js';

export interface RunsRoutesOptions {
  engine: Engine;
  store: Store;
}

/** At most this many runs per bulk command. */
const BULK_LIMIT = 500;
/** Commands of one bulk request in flight at once: runs held elsewhere each wait for their holder. */
const BULK_PARALLEL = 8;
const NAME = { type: 'string', minLength: 1, maxLength: 64 } as const;
// No `type`: Ajv would coerce `5.5` or `true` to a string; `idParam` takes numbers and names the field it refuses.
const ID = { description: '1–64 of A-Z a-z 0-9 _ . -, or a whole number (taken as its decimal string)' } as const;
const runView = { type: 'object', additionalProperties: true, description: 'A run: status, machine state, stages with states and counts' } as const;

const startBody = {
  type: 'object',
  additionalProperties: false,
  required: ['site_id', 'pipeline'],
  properties: {
    site_id: ID,
    pipeline: NAME,
    trigger: { type: 'string', minLength: 1, maxLength: 32 },
    account_id: { description: `Admin token only: the account the run belongs to [default: "default"]; ${ID.description}` },
    options: { type: 'object', description: "Pipeline options, checked against the pipeline's `options_schema` (GET /pipelines)" },
    machine_name: { type: 'string', minLength: 1, maxLength: 100, description: 'With `pipeline: "external"`: the machine of the engine that reports this run' },
  },
} as const;

const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    site_id: NAME,
    status: { type: 'string', enum: [...RUN_STATES] },
    open: { type: 'boolean', description: 'Only runs not closed' },
    before: { type: 'string', minLength: 1, maxLength: 100, description: 'A run id: the runs listed after it (the next page after a page that ended with it)' },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
  },
} as const;

const commandBody = {
  anyOf: [
    { type: 'null' },
    {
      type: 'object',
      additionalProperties: false,
      properties: { reason: { type: 'string', maxLength: 500 } },
    },
  ],
} as const;

const bulkBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    site_id: ID,
    status: { type: 'string', enum: [...RUN_STATES] },
    run_ids: { type: 'array', minItems: 1, maxItems: BULK_LIMIT, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 100 } },
    reason: { type: 'string', maxLength: 500 },
  },
} as const;

/** The `Idempotency-Key` header, checked: 1–255 visible ASCII characters, given once. */
function idempotencyKeyOf(raw: string | string[] | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(raw)) {
    throw new RunstateError('BAD_REQUEST', 'Expected `Idempotency-Key` to be 1–255 visible ASCII characters, given once.');
  }
  return raw;
}

/** A digest of what a start asks for, the same whatever the order of keys in the body. */
function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

async function visibleRun(engine: Engine, principal: ReturnType<typeof principalOf>, rawId: unknown) {
  const runId = runIdParam(rawId);
  const run = await engine.getRun(runId);
  if (!run) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${runId}.`);
  requireSite(principal, run.site_id);
  return run;
}

/** `/runs`: start, list, read, command, and the trace (docs/api.md). */
export const runsRoutes: FastifyPluginAsync<RunsRoutesOptions> = async (app: FastifyInstance, { engine, store }) => {
  app.post<{ Body: { site_id: unknown; pipeline: string; trigger?: string; account_id?: unknown; options?: Record<string, unknown>; machine_name?: string } }>(
    '/runs',
    {
      schema: {
        summary: 'Start a run',
        body: startBody,
        headers: {
          type: 'object',
          properties: {
            'idempotency-key': { type: 'string', description: '1–255 visible ASCII characters: the same key and body within 24 h answer the run first made (200, `Idempotent-Replayed: true`)' },
          },
        },
        response: { 201: { type: 'object', properties: { data: runView } }, 200: { type: 'object', properties: { data: runView } } },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { pipeline, trigger, options, machine_name } = request.body;
      const siteId = idParam(request.body.site_id, 'site_id');
      const givenAccount = request.body.account_id === undefined ? undefined : idParam(request.body.account_id, 'account_id');
      requireSite(principal, siteId);
      if (!principal.admin && givenAccount !== undefined && givenAccount !== principal.accountId) {
        throw new RunstateError('FORBIDDEN', 'This token may only start runs for its own account.');
      }
      const accountId = principal.accountId ?? givenAccount ?? 'default';
      // A W3C traceparent makes the run's spans children of the caller's trace; an invalid one is ignored.
      const parent = parseTraceParent(request.headers.traceparent);
      const traceParent = parent ? formatTraceParent(parent) : null;
      const req = { accountId, siteId, pipeline, trigger, options, machineName: machine_name, traceParent };
      const key = idempotencyKeyOf(request.headers['idempotency-key']);
      if (key !== undefined) {
        const fingerprint = fingerprintOf({ account_id: accountId, site_id: siteId, pipeline, trigger: trigger ?? 'manual', options: options ?? {}, machine_name: machine_name ?? null });
        const { run, replayed } = await engine.startRunOnce(req, { scope: principal.name, key, fingerprint });
        if (replayed) {
          request.log.info({ runId: run.run_id }, 'idempotent start replayed');
          return reply.status(200).header('idempotent-replayed', 'true').send({ data: run });
        }
        request.log.info({ runId: run.run_id, pipeline, siteId }, 'run started');
        return reply.status(201).send({ data: run });
      }
      const run = await engine.startRun(req);
      request.log.info({ runId: run.run_id, pipeline, siteId }, 'run started');
      return reply.status(201).send({ data: run });
    },
  );

  app.get('/pipelines', { schema: { summary: 'The pipelines runs can be started with' } }, async () => ({
    data: engine.pipelines(),
  }));

  app.get<{ Querystring: { site_id?: string; status?: string; open?: boolean; before?: string; limit: number } }>(
    '/runs',
    { schema: { summary: 'List runs, newest first', querystring: listQuery } },
    async (request) => {
      const principal = principalOf(request);
      const { status, open, limit } = request.query;
      // The cursor is a run the caller was shown: its place in the order is its creation time and id.
      const cursor = request.query.before === undefined ? undefined : await visibleRun(engine, principal, request.query.before);
      const before = cursor ? { createdAt: cursor.created_at, runId: cursor.run_id } : undefined;
      const site_id = request.query.site_id === undefined ? undefined : idParam(request.query.site_id, 'site_id');
      if (site_id !== undefined) requireSite(principal, site_id);
      const siteIds = site_id !== undefined ? [site_id] : principal.siteIds ? [...principal.siteIds] : undefined;
      const runs = await engine.listRuns({ siteIds, status, open, limit, ...(before ? { before } : {}) });
      return { data: runs };
    },
  );

  app.get<{ Params: { run_id: string } }>('/runs/:run_id', { schema: { summary: 'One run' } }, async (request) => {
    return { data: await visibleRun(engine, principalOf(request), request.params.run_id) };
  });

  app.post<{ Params: { command: string }; Body: { site_id?: unknown; status?: string; run_ids?: string[]; reason?: string } }>(
    '/runs/bulk/:command',
    {
      schema: {
        summary: 'Apply one command to many runs, each as if commanded alone',
        params: {
          type: 'object',
          properties: { command: { type: 'string', enum: [...COMMANDS] } },
          required: ['command'],
        },
        body: bulkBody,
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body ?? {};
      const command = request.params.command as Command;
      if (body.site_id === undefined && body.status === undefined && body.run_ids === undefined) {
        throw new RunstateError('BAD_REQUEST', 'Expected at least one of `site_id`, `status` or `run_ids`.');
      }
      const siteId = body.site_id === undefined ? undefined : idParam(body.site_id, 'site_id');
      if (siteId !== undefined) requireSite(principal, siteId);
      let runIds: string[];
      if (body.run_ids) {
        runIds = body.run_ids;
      } else {
        // Only what the token may see: its sites, or the one it named.
        const siteIds = siteId !== undefined ? [siteId] : principal.siteIds ? [...principal.siteIds] : undefined;
        runIds = (await engine.listRuns({ siteIds, status: body.status, limit: BULK_LIMIT })).map((r) => r.run_id);
      }
      const one = async (id: string): Promise<BulkResult> => {
        try {
          const run = await visibleRun(engine, principal, id);
          // With run_ids, the other filters still narrow: a run that does not match is left as it is.
          if ((siteId !== undefined && run.site_id !== siteId) || (body.status !== undefined && run.status !== body.status)) {
            return { run_id: id, status: 409, code: 'COMMAND_NOT_ALLOWED', message: `The run is ${run.status} on site ${run.site_id}: it does not match the filter.` };
          }
          const result = await engine.command(run.run_id, command, { by: principal.name, reason: body.reason });
          return { run_id: id, status: 200, accepted: result.accepted, run_status: result.run.status };
        } catch (err) {
          const e = asRunstateError(err);
          if (e.code === 'INTERNAL') request.log.error({ err, runId: id, command }, 'bulk command failed');
          return { run_id: id, status: e.status, code: e.code, message: e.message };
        }
      };
      const results: BulkResult[] = new Array<BulkResult>(runIds.length);
      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < runIds.length) {
          const i = next++;
          results[i] = await one(runIds[i]!);
        }
      };
      await Promise.all(Array.from({ length: Math.min(BULK_PARALLEL, runIds.length) }, lane));
      const accepted = results.filter((r) => r.status === 200 && 'accepted' in r && r.accepted).length;
      request.log.info({ command, runs: runIds.length, accepted }, 'bulk command');
      return { results };
    },
  );

  app.post<{ Params: { run_id: string; command: string }; Body: { reason?: string } | null | undefined }>(
    '/runs/:run_id/:command',
    {
      schema: {
        summary: 'Command a run: pause, resume, cancel, retry, close, approve, reject or retry_failed (docs/api.md, "Commands")',
        params: {
          type: 'object',
          properties: { run_id: { type: 'string' }, command: { type: 'string', enum: [...COMMANDS] } },
          required: ['run_id', 'command'],
        },
        body: commandBody,
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const run = await visibleRun(engine, principal, request.params.run_id);
      const reason = request.body?.reason;
      const result = await engine.command(run.run_id, request.params.command as Command, { by: principal.name, reason });
      if (result.accepted) request.log.info({ runId: run.run_id, command: request.params.command }, 'command accepted');
      return { data: result.run, accepted: result.accepted };
    },
  );

  app.get<{ Params: { run_id: string }; Querystring: { after_seq: number } }>(
    '/runs/:run_id/trace',
    {
      schema: {
        summary: 'The run’s events as JSONL, in seq order',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { after_seq: { type: 'integer', minimum: 0, default: 0 } },
        },
      },
    },
    async (request, reply) => {
      const run = await visibleRun(engine, principalOf(request), request.params.run_id);
      const runId = run.run_id;
      async function* lines() {
        let after = request.query.after_seq;
        for (;;) {
          const page = await store.readEvents(runId, after, 1000);
          if (page.length === 0) return;
          yield page.map((e) => `${JSON.stringify(e)}\n`).join('');
          after = page[page.length - 1]!.seq;
        }
      }
      return reply.type('application/x-ndjson; charset=utf-8').send(Readable.from(lines()));
    },
  );
};
