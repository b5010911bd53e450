import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../../service/cli/main.js';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { ADMIN, appOn } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';

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

  async function cli(...args: string[]): Promise<{ code: number | 'serving'; out: string; err: string }> {
    let out = '';
    let err = '';
    const io = {
      out: { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream,
      err: { write: (s: string) => ((err += s), true) } as unknown as NodeJS.WriteStream,
      env: {},
    };
    const code = await run(['--url', url, '--token', ADMIN, ...args], io);
    return { code, out, err };
  }

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
