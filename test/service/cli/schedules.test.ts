import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { appOn } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';
import { cliAt } from './in-process.js';

describe('runstate schedules', () => {
  let dir: ReturnType<typeof tempDir>;
  let svc: Awaited<ReturnType<typeof appOn>>;
  let url: string;
  beforeEach(async () => {
    dir = tempDir();
    svc = await appOn(dir.path, [faceProcessorPipeline]);
    url = (await svc.start()).url;
  });
  afterEach(async () => {
    await svc.stop();
    dir.remove();
  });

  const cli = (...args: string[]) => cliAt(url, ...args);

  it('creates, lists, pauses, resumes and deletes a schedule', async () => {
    const made = await cli('schedules', 'create', 'face_processor', '0 9 * * 1-5', '--site', 'site-5', '--timezone', 'Europe/Paris', '--option', 'seed=7', '--overlap', 'allow');
    expect(made).toMatchObject({ code: 0, err: '' });
    const [id, , , next] = made.out.trim().split(/\s+/);
    expect(id).toMatch(/^sch_[0-9a-f]{24}$/);
    expect(Date.parse(next!)).toBeGreaterThan(Date.now());

    const listed = await cli('schedules', 'list', '--site', 'site-5');
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(new RegExp(`${id}\\s+site-5\\s+face_processor\\s+0 9 \\* \\* 1-5\\s+Europe/Paris\\s+allow\\s+active`));
    const json = JSON.parse((await cli('schedules', 'list', '--json')).out) as { schedule_id: string; options: unknown }[];
    expect(json).toEqual([expect.objectContaining({ schedule_id: id, options: { seed: 7 } })]);

    expect(await cli('schedules', 'pause', id!)).toMatchObject({ code: 0, out: `${id}: paused\n` });
    expect((await cli('schedules', 'pause', id!)).out).toBe(`${id}: paused (pause: nothing to do)\n`);
    expect(await cli('schedules', 'resume', id!)).toMatchObject({ code: 0, out: `${id}: active\n` });
    expect(await cli('schedules', 'delete', id!)).toMatchObject({ code: 0, out: `${id}: deleted\n` });
    expect((await cli('schedules', 'list')).out.trim()).toBe('no schedules');
    const again = await cli('schedules', 'delete', id!);
    expect(again.code).toBe(1);
    expect(again.err).toContain('SCHEDULE_NOT_FOUND');
  });

  it('passes the service’s refusal of a bad cron on with exit 1, and a bad --overlap is exit 2', async () => {
    const bad = await cli('schedules', 'create', 'face_processor', '* * *', '--site', 'site-5');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/`cron`.*INVALID_SCHEDULE/);
    expect((await cli('schedules', 'create', 'face_processor', '* * * * *', '--site', 'site-5', '--overlap', 'queue')).code).toBe(2);
    expect((await cli('schedules', 'list')).out.trim()).toBe('no schedules');
  });
});
