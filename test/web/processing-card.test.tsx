// @vitest-environment jsdom
import { cleanup, render, screen, within } from '@testing-library/react';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessingView, RunView } from '../../service/engine/view.js';
import { Controls } from '../../web/ui/Controls.js';
import { ProcessingCard } from '../../web/ui/ProcessingCard.js';
import { StageTimeline } from '../../web/ui/StageTimeline.js';
import { engineOn, isTransition, tempDir } from '../helpers/engine.js';
import { gatedPipeline } from '../helpers/gated.js';

/** Snapshots of real runs, taken from the engine at each state the card must show. */
const shots: Record<string, { run: RunView; processing: ProcessingView }> = {};
/** A failed run, then cancelled: current_processing no longer answers for it. */
let cancelled: RunView;

describe('processing card, in every state of real runs', () => {
  const dir = tempDir();
  beforeAll(async () => {
    const gate = gatedPipeline('gated', [4, 0, 1], { concurrency: 2, holdLoadOf: 2 });
    const flaky = gatedPipeline('flaky', [1], { loadFails: 1 });
    const { engine, next } = engineOn(dir.path, [gate.pipeline, flaky.pipeline]);
    const shoot = async (name: string, id: string) => {
      shots[name] = { run: (await engine.getRun(id))!, processing: (await engine.currentProcessing(id))! };
    };
    const { run_id: id } = await engine.startRun({ accountId: 'a', siteId: 's', pipeline: 'gated' });
    await gate.inFlight(2);
    await shoot('running', id);
    await gate.finish();
    await gate.inFlight(2);
    await engine.command(id, 'pause', { by: 'x' });
    await shoot('pausing', id);
    await gate.finish();
    await gate.finish();
    await next(isTransition('run', 'paused'));
    await shoot('paused', id);
    await engine.command(id, 'resume', { by: 'x' });
    await gate.finish();
    await gate.loadHeldNow();
    await engine.command(id, 'pause', { by: 'x' });
    gate.releaseLoad();
    await next(isTransition('stage_2', 'empty'));
    await engine.settle();
    await next((e) => e.event === 'state_change' && e.machine_name === 'run' && (e.payload as { to_state: string }).to_state === 'paused' && e.seq > 20);
    await shoot('empty', id);
    await engine.command(id, 'resume', { by: 'x' });
    await gate.finish();
    await engine.whenRetired(id);
    await shoot('completed', id);
    const { run_id: fid } = await engine.startRun({ accountId: 'a', siteId: 's', pipeline: 'flaky' });
    await next(isTransition('run', 'failed'));
    await shoot('failed', fid);
    await engine.command(fid, 'cancel', { by: 'x' });
    await engine.whenRetired(fid);
    cancelled = (await engine.getRun(fid))!;
    await engine.stop();
  });
  afterAll(() => dir.remove());
  afterEach(cleanup);

  const bar = () => screen.getByRole('progressbar');

  it('running: stage, per-item progress, items in flight and up next', () => {
    const { run, processing } = shots.running!;
    render(<ProcessingCard run={run} processing={processing} />);
    expect(screen.getByText('Stage 1 of 3: Stage 1')).toBeTruthy();
    expect(bar().getAttribute('aria-valuenow')).toBe('0');
    expect(screen.getByText('0 / 4 · 0%')).toBeTruthy();
    const now = within(screen.getByText('Processing now').parentElement!);
    expect(now.getAllByRole('listitem').map((li) => li.textContent)).toEqual(['item 1.1', 'item 1.2']);
    const next = within(screen.getByText(/Up next/).parentElement!);
    expect(next.getAllByRole('listitem').map((li) => li.textContent)).toEqual(['item 1.3', 'item 1.4']);
  });

  it('pausing: says it is finishing the items in flight', () => {
    const { run, processing } = shots.pausing!;
    render(<ProcessingCard run={run} processing={processing} />);
    expect(screen.getByText('Pausing: finishing the items in flight')).toBeTruthy();
    expect(screen.getByLabelText('Processing').getAttribute('data-state')).toBe('pausing');
  });

  it('paused: yellow, and keeps its last progress', () => {
    const { run, processing } = shots.paused!;
    render(<ProcessingCard run={run} processing={processing} />);
    expect(screen.getByLabelText('Processing').getAttribute('data-state')).toBe('paused');
    expect(screen.getByText('Paused')).toBeTruthy();
    expect(bar().getAttribute('aria-valuenow')).toBe('75');
    expect(screen.getByText('3 / 4 · 75%')).toBeTruthy();
    expect(screen.getByText('Nothing: paused.')).toBeTruthy();
  });

  it('an empty stage reads "No items to process", at 100%, never blank', () => {
    const { run, processing } = shots.empty!;
    expect(processing.stage_state).toBe('empty');
    render(<ProcessingCard run={run} processing={processing} />);
    expect(screen.getAllByText(/No items to process/).length).toBeGreaterThan(0);
    expect(bar().getAttribute('aria-valuenow')).toBe('100');
  });

  it('failed: the error and a Retry button', () => {
    const { run, processing } = shots.failed!;
    let retried = false;
    render(<ProcessingCard run={run} processing={processing} onRetry={() => (retried = true)} />);
    expect(screen.getByRole('alert').textContent).toContain('item source unavailable');
    screen.getByRole('button', { name: 'Retry' }).click();
    expect(retried).toBe(true);
  });

  it('completed: 100%, and stays with a Close button until closed', () => {
    const { run, processing } = shots.completed!;
    render(<ProcessingCard run={run} processing={processing} onClose={() => undefined} />);
    expect(screen.getByText('Completed')).toBeTruthy();
    expect(bar().getAttribute('aria-valuenow')).toBe('100');
    expect(screen.getByRole('button', { name: 'Close' })).toBeTruthy();
    cleanup();
    render(<ProcessingCard run={{ ...run, closed_at: '2025-01-01T00:00:00.000Z' }} processing={processing} onClose={() => undefined} />);
    expect(screen.queryByRole('button', { name: 'Close' })).toBeNull();
  });

  it('cancelled: its own tone, no error, no Retry; the stage that had failed reads cancelled', () => {
    render(<ProcessingCard run={cancelled} processing={null} onRetry={() => undefined} />);
    expect(screen.getByLabelText('Processing').getAttribute('data-state')).toBe('cancelled');
    expect(screen.getByText('Cancelled')).toBeTruthy();
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.queryByRole('button', { name: 'Retry' })).toBeNull();
    cleanup();
    render(<StageTimeline run={cancelled} />);
    expect(screen.getAllByRole('listitem').map((s) => s.getAttribute('data-stage-state'))).toEqual(['cancelled']);
    // The stage keeps the reason it had stopped before the cancel.
    expect(cancelled.stages[0]).toMatchObject({ state: 'cancelled', error: 'item source unavailable' });
  });

  it('pulses and says how long an item has run when it takes far longer than usual', () => {
    const { run, processing } = shots.running!;
    render(<ProcessingCard run={run} processing={processing} inFlightSince={{ '101': 0 }} usualItemMs={2000} now={60_000} />);
    expect(screen.getByLabelText('Processing').className).toContain('card-slow');
    expect(screen.getByText(/item 1.1 has been running for 1m 0s/)).toBeTruthy();
  });

  it('enables exactly the commands the server’s view allows, in every state', () => {
    const enabled = () => screen.getAllByRole('button').filter((b) => !(b as HTMLButtonElement).disabled).map((b) => b.textContent!.toLowerCase());
    for (const [name, { run }] of Object.entries(shots)) {
      render(<Controls allowed={run.allowed_commands} busy={false} failedItems={run.failed_items} onCommand={() => undefined} />);
      expect(enabled(), name).toEqual(run.allowed_commands);
      cleanup();
    }
    expect(shots.paused!.run.allowed_commands).toContain('resume');
    expect(shots.paused!.run.allowed_commands).not.toContain('pause');
    expect(shots.failed!.run.allowed_commands).toContain('retry');
    expect(shots.completed!.run.allowed_commands).toEqual(['close']);
    render(<Controls allowed={shots.running!.run.allowed_commands} busy failedItems={0} onCommand={() => undefined} />);
    expect(enabled()).toEqual([]);
  });

  it('offers Retry failed with the count of failed items only while retry_failed is allowed', () => {
    const sent: string[] = [];
    render(<Controls allowed={['close', 'retry_failed']} busy={false} failedItems={3} onCommand={(c) => sent.push(c)} />);
    screen.getByRole('button', { name: 'Retry failed (3)' }).click();
    expect(sent).toEqual(['retry_failed']);
    cleanup();
    render(<Controls allowed={['close']} busy={false} failedItems={3} onCommand={() => undefined} />);
    expect(screen.queryByRole('button', { name: /Retry failed/ })).toBeNull();
  });

  it('shows every stage with its machine state and counts', () => {
    const { run } = shots.completed!;
    render(<StageTimeline run={run} />);
    const stages = screen.getAllByRole('listitem');
    expect(stages.map((s) => s.getAttribute('data-stage-state'))).toEqual(['completed', 'empty', 'completed']);
    expect(stages[0]!.textContent).toContain('4/4');
  });
});
