import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { DemoOptions } from '../../../service/pipelines/demo.js';
import { faceProcessorPipeline } from '../../../service/pipelines/face-processor.js';
import { resolveOptions } from '../../../service/pipelines/schema.js';

describe('the demo pipelines', () => {
  const ctx = (delay_ms: number, signal = new AbortController().signal) => ({
    runId: 'run_20250101_000000_manual', stage: 1, options: resolveOptions(faceProcessorPipeline, { delay_ms }).options as DemoOptions,
    signal, log: () => {}, attempt: 1, idempotencyKey: 'k',
  });
  const item = { id: 100001, title: 'Image 1' };

  it('resolves an item at once with delay_ms 0, before any timer could fire', async () => {
    const done = faceProcessorPipeline.stages[0]!.processItem(item, ctx(0)).then(() => 'resolved');
    expect(await Promise.race([done, nextTurn().then(() => 'a turn of the event loop')])).toBe('resolved');
  });

  it('still honours an aborted signal with delay_ms 0', async () => {
    const abort = new AbortController();
    abort.abort();
    await expect(faceProcessorPipeline.stages[0]!.processItem(item, ctx(0, abort.signal))).rejects.toThrow();
  });

  it('waits with delay_ms above 0', async () => {
    const done = faceProcessorPipeline.stages[0]!.processItem(item, ctx(50)).then(() => 'resolved');
    expect(await Promise.race([done, nextTurn().then(() => 'a turn of the event loop')])).toBe('a turn of the event loop');
    await done;
  });
});
