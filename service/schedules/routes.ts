// `/schedules`: start runs of a pipeline on a cron schedule; list, read, pause, resume and
// delete schedules (docs/api.md, "Schedules"). Tokens see the schedules of their
// sites, as they see runs.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { canSeeSite, type Principal } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import { EXTERNAL_PIPELINE } from '../engine/kinds/external.js';
import { RunstateError } from '../errors.js';
import { idParam, principalOf, requireSite } from '../http.js';
import { ScheduleSpecError, checkTimezone, cronOf, nextFireAfter } from './cron.js';
import { SCHEDULED_TRIGGER } from './fire.js';
import { OVERLAPS, type Fire, type Overlap, type Schedule, type ScheduleStore } from './types.js';

export interface ScheduleRoutesOptions {
  schedules: ScheduleStore;
  engine: Pick<Engine, 'checkStart'>;
  /** Told when a schedule was made, resumed, paused or deleted here: the ticker looks again. */
  changed: () => void;
  /** [Date.now] */
  now?: () => number;
}

/** Fires (with their runs) shown per schedule. */
export const LAST_RUNS = 5;
const SCHEDULE_ID = /^sch_[0-9a-f]{24}$/;
const ID = { description: '1–64 of A-Z a-z 0-9 _ . -, or a whole number (taken as its decimal string)' } as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['site_id', 'pipeline', 'cron'],
  properties: {
    site_id: ID,
    pipeline: { type: 'string', minLength: 1, maxLength: 64 },
    options: { type: 'object', description: "Pipeline options, checked against the pipeline's `options_schema` now and at each fire" },
    cron: { type: 'string', minLength: 1, maxLength: 200, description: '5 fields (minute first), or 6 with seconds first' },
    timezone: { type: 'string', minLength: 1, maxLength: 64, description: 'IANA name the cron fields are read in [default: "UTC"]' },
    overlap: { type: 'string', enum: [...OVERLAPS], description: '`skip`: no run while the previous one is unfinished; `allow`: start anyway [default: "skip"]' },
  },
} as const;

/** A fire as the API shows it. */
function fireView(f: Fire) {
  return { fire_at: new Date(f.fireAt).toISOString(), state: f.state, run_id: f.runId, run_status: f.runStatus, error: f.error };
}

/** A schedule as the API shows it: its next fire time (null while paused) and its last fires. */
export function scheduleView(s: Schedule, fires: readonly Fire[], nowMs: number) {
  const next = s.status === 'active' ? nextFireAfter(s, Math.max(nowMs, s.lastFireAt)) : null;
  return {
    schedule_id: s.scheduleId,
    account_id: s.accountId,
    site_id: s.siteId,
    pipeline: s.pipeline,
    options: s.options,
    cron: s.cron,
    timezone: s.timezone,
    overlap: s.overlap,
    status: s.status,
    next_run_at: next === null ? null : new Date(next).toISOString(),
    created_by: s.createdBy,
    created_at: s.createdAt,
    last_runs: fires.map(fireView),
  };
}

function visible(principal: Principal, s: Schedule | undefined): s is Schedule {
  return s !== undefined && canSeeSite(principal, s.siteId) && (principal.admin || principal.accountId === s.accountId);
}

export const scheduleRoutes: FastifyPluginAsync<ScheduleRoutesOptions> = async (app: FastifyInstance, opts) => {
  const { schedules, engine, changed } = opts;
  const now = opts.now ?? Date.now;

  const withFires = async (list: readonly Schedule[]) => {
    const fires = await schedules.lastFires(list.map((s) => s.scheduleId), LAST_RUNS);
    const t = now();
    return list.map((s) => scheduleView(s, fires.get(s.scheduleId) ?? [], t));
  };

  const visibleSchedule = async (principal: Principal, id: string): Promise<Schedule> => {
    const s = SCHEDULE_ID.test(id) ? await schedules.get(id) : undefined;
    if (!visible(principal, s)) throw new RunstateError('SCHEDULE_NOT_FOUND', `No schedule with id ${JSON.stringify(id.slice(0, 80))}.`);
    return s;
  };

  app.post<{ Body: { site_id: unknown; pipeline: string; options?: Record<string, unknown>; cron: string; timezone?: string; overlap?: Overlap } }>(
    '/schedules',
    { schema: { summary: 'Start runs of a pipeline on a cron schedule', body: createBody } },
    async (request, reply) => {
      const principal = principalOf(request);
      const { pipeline, options = {}, overlap = 'skip' } = request.body;
      const siteId = idParam(request.body.site_id, 'site_id');
      requireSite(principal, siteId);
      const accountId = principal.accountId ?? 'default';
      const cron = request.body.cron.trim().replace(/\s+/g, ' ');
      let timezone: string;
      try {
        timezone = checkTimezone(request.body.timezone ?? 'UTC');
        cronOf(cron, timezone);
      } catch (err) {
        if (err instanceof ScheduleSpecError) throw new RunstateError('INVALID_SCHEDULE', err.message);
        throw err;
      }
      if (pipeline === EXTERNAL_PIPELINE) throw new RunstateError('BAD_REQUEST', 'Runs fed from outside (`pipeline: "external"`) cannot be scheduled: their engine starts them.');
      // The checks a start makes (pipeline, options against its schema), without starting.
      engine.checkStart({ accountId, siteId, pipeline, trigger: SCHEDULED_TRIGGER, options });
      const createdAt = now();
      const schedule: Schedule = {
        scheduleId: `sch_${randomBytes(12).toString('hex')}`,
        accountId,
        siteId,
        pipeline,
        options,
        cron,
        timezone,
        overlap,
        status: 'active',
        createdBy: principal.name,
        createdAt: new Date(createdAt).toISOString(),
        lastFireAt: createdAt,
      };
      await schedules.create(schedule);
      changed();
      request.log.info({ scheduleId: schedule.scheduleId, siteId, pipeline, cron, timezone }, 'schedule created');
      return reply.status(201).send({ data: scheduleView(schedule, [], createdAt) });
    },
  );

  app.get<{ Querystring: { site_id?: unknown } }>(
    '/schedules',
    { schema: { summary: 'List schedules, each with its next fire time and last runs', querystring: { type: 'object', additionalProperties: false, properties: { site_id: ID } } } },
    async (request) => {
      const principal = principalOf(request);
      const siteId = request.query.site_id === undefined ? undefined : idParam(request.query.site_id, 'site_id');
      if (siteId !== undefined) requireSite(principal, siteId);
      const siteIds = siteId !== undefined ? [siteId] : principal.siteIds ? [...principal.siteIds] : undefined;
      const list = (await schedules.list(siteIds === undefined ? {} : { siteIds })).filter((s) => visible(principal, s));
      return { data: await withFires(list) };
    },
  );

  app.get<{ Params: { schedule_id: string } }>('/schedules/:schedule_id', { schema: { summary: 'One schedule' } }, async (request) => {
    const s = await visibleSchedule(principalOf(request), request.params.schedule_id);
    return { data: (await withFires([s]))[0] };
  });

  app.delete<{ Params: { schedule_id: string } }>('/schedules/:schedule_id', { schema: { summary: 'Delete a schedule (its runs stay)' } }, async (request) => {
    const s = await visibleSchedule(principalOf(request), request.params.schedule_id);
    await schedules.remove(s.scheduleId);
    changed();
    request.log.info({ scheduleId: s.scheduleId }, 'schedule deleted');
    return { data: { schedule_id: s.scheduleId, deleted: true } };
  });

  app.post<{ Params: { schedule_id: string; command: 'pause' | 'resume' } }>(
    '/schedules/:schedule_id/:command',
    {
      schema: {
        summary: 'Pause or resume a schedule (resuming does not catch up the fires that fell while it was paused)',
        params: { type: 'object', required: ['schedule_id', 'command'], properties: { schedule_id: { type: 'string' }, command: { type: 'string', enum: ['pause', 'resume'] } } },
      },
    },
    async (request) => {
      const s = await visibleSchedule(principalOf(request), request.params.schedule_id);
      const status = request.params.command === 'pause' ? 'paused' : 'active';
      const updated = await schedules.setStatus(s.scheduleId, status, now());
      if (!updated) throw new RunstateError('SCHEDULE_NOT_FOUND', `No schedule with id ${JSON.stringify(s.scheduleId)}.`);
      changed();
      if (s.status !== status) request.log.info({ scheduleId: s.scheduleId, status }, `schedule ${request.params.command}d`);
      return { data: (await withFires([updated]))[0], accepted: s.status !== status };
    },
  );
};
