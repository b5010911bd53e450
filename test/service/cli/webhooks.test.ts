import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { appOn } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';
import { cliAt } from './in-process.js';

const SECRET = 'a-secret-of-sixteen-chars';

describe('runstate webhooks', () => {
  let dir: ReturnType<typeof tempDir>;
  let svc: Awaited<ReturnType<typeof appOn>>;
  let url: string;
  beforeEach(async () => {
    dir = tempDir();
    svc = await appOn(dir.path, [faceProcessorPipeline], {}, { env: { RUNSTATE_WEBHOOKS_ALLOW_PRIVATE: '1' } });
    url = (await svc.start()).url;
  });
  afterEach(async () => {
    await svc.stop();
    dir.remove();
  });

  const cli = (...args: string[]) => cliAt(url, ...args);

  it('adds, lists, shows the deliveries of and deletes a subscription', async () => {
    const added = await cli('webhooks', 'add', 'http://127.0.0.1:9/hook', '--events', 'run_completed,run_failed', '--secret', SECRET, '--site', 'site-5');
    expect(added).toMatchObject({ code: 0, err: '' });
    const id = added.out.trim();
    expect(id).toMatch(/^wh_[0-9a-f]{24}$/);

    const listed = await cli('webhooks', 'list');
    expect(listed.code).toBe(0);
    expect(listed.out).toContain(id);
    expect(listed.out).toContain('run_completed,run_failed');
    const json = JSON.parse((await cli('webhooks', 'list', '--json')).out) as { webhook_id: string; site_id: string }[];
    expect(json).toEqual([expect.objectContaining({ webhook_id: id, site_id: 'site-5' })]);

    expect((await cli('webhooks', 'deliveries', id)).out.trim()).toBe('no deliveries');
    expect(await cli('webhooks', 'delete', id)).toMatchObject({ code: 0, out: `${id}: deleted\n` });
    const again = await cli('webhooks', 'delete', id);
    expect(again.code).toBe(1);
    expect(again.err).toContain('WEBHOOK_NOT_FOUND');
  });

  it('refuses unknown events and a missing secret with exit 2, and passes the service’s refusals on with exit 1', async () => {
    const unknown = await cli('webhooks', 'add', 'http://127.0.0.1:9/hook', '--events', 'run_exploded', '--secret', SECRET);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('--events');
    const noSecret = await cli('webhooks', 'add', 'http://127.0.0.1:9/hook', '--events', 'run_failed');
    expect(noSecret.code).toBe(2);
    const badUrl = await cli('webhooks', 'add', 'ftp://127.0.0.1/hook', '--events', 'run_failed', '--secret', SECRET);
    expect(badUrl.code).toBe(1);
    expect(badUrl.err).toContain('INVALID_WEBHOOK_URL');
  });
});
