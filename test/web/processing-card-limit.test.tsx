// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ProcessingView } from '../../service/engine/view.js';
import type { AnyPipeline } from '../../service/pipelines/types.js';
import { ProcessingCard } from '../../web/ui/ProcessingCard.js';
import { ADMIN, appOn, auth } from '../helpers/app.js';
import { tempDir } from '../helpers/engine.js';
import { gatedPipeline } from '../helpers/gated.js';

describe('processing card, while items wait on a limit', () => {
  const dir = tempDir();
  let stop: (() => Promise<void>) | undefined;
  afterEach(cleanup);
  afterAll(async () => {
    await stop?.();
    dir.remove();
  });

  it('says how many items wait on which limit, from the server’s view', async () => {
    const gate = gatedPipeline('solo', [3], { concurrency: 3 });
    const solo: AnyPipeline = { ...gate.pipeline, stages: gate.pipeline.stages.map((s) => ({ ...s, limit: { key: 'openai', concurrency: 1 } })) };
    const h = await appOn(dir.path, [solo]);
    stop = h.stop;
    const runId = (await h.engine.startRun({ accountId: 'a', siteId: 's', pipeline: 'solo' })).run_id;
    await gate.inFlight(1);
    let processing: ProcessingView | undefined;
    for (const deadline = Date.now() + 10_000; !processing?.limit_waiting; ) {
      if (Date.now() > deadline) throw new Error('no item waited on the limit');
      const res = await h.app.inject({ url: `/api/v1/automation/current_processing/?run_id=${runId}`, headers: auth(ADMIN) });
      processing = (res.json() as { data: ProcessingView }).data;
      await new Promise((r) => setTimeout(r, 20));
    }
    render(<ProcessingCard run={(await h.engine.getRun(runId))!} processing={processing} />);
    expect(screen.getByText('2 items waiting on the openai limit')).toBeTruthy();
    for (let k = 0; k < 3; k++) await gate.finish();
    await h.engine.whenRetired(runId);
  });
});
