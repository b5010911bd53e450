import { spawn } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { TraceWriter } from '../../../service/trace/trace-writer.js';
import { tempDir } from '../../helpers/engine.js';

const CHILD = join(import.meta.dirname, '../../helpers/crash-child.ts');
const ITEMS_PER_STAGE = [8, 0, 8];

interface Life {
  lines: string[];
  /** How the process ended: 'killed' when the test killed it. */
  ended: 'done' | 'killed';
}

/**
 * Runs the service process until `killWhen` matches a line it printed (then SIGKILL), or until
 * it finishes the run by itself.
 */
function live(dataDir: string, env: Record<string, string>, killWhen?: (line: string, lines: string[]) => boolean): Promise<Life> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: { ...process.env, DATA: dataDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let killed = false;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (!killed && killWhen?.(line, lines)) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (killed && signal === 'SIGKILL') resolve({ lines, ended: 'killed' });
      else if (code === 0 && lines.some((l) => l.startsWith('DONE'))) resolve({ lines, ended: 'done' });
      else reject(new Error(`service exited with ${code ?? signal}: ${stderr.slice(-2000)}\n${lines.slice(-20).join('\n')}`));
    });
  });
}

const event = (name: string, pred: (parts: string[]) => boolean = () => true) => (line: string) => {
  const parts = line.split(' ');
  return parts[0] === 'EVENT' && parts[2] === name && pred(parts);
};

async function checkRun(dataDir: string) {
  const store = new SqliteStore({ filename: join(dataDir, 'runstate.db') });
  try {
    const [run] = await store.listRuns({});
    expect(run!.status).toBe('completed');
    // Every item recorded exactly once (the ledger is unique per item; none is missing).
    const ledger = await store.ledger(run!.runId);
    const expected = ITEMS_PER_STAGE.flatMap((n, i) => Array.from({ length: n }, (_, k) => `${i + 1}:${(i + 1) * 100 + k + 1}`));
    expect(ledger.map((l) => `${l.stage}:${String(l.itemId)}`).sort()).toEqual(expected.sort());
    // No recorded item was ever processed again.
    const violations = join(dataDir, 'violations.log');
    expect(existsSync(violations) ? readFileSync(violations, 'utf8') : '').toBe('');
    // seq is gap-free, and each item has exactly one processed/failed event.
    const events = await store.readEvents(run!.runId, 0);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const itemEvents = events.filter((e) => e.event === 'stage_item_processed' || e.event === 'stage_item_failed');
    expect(itemEvents.map((e) => `${String(e.stage)}:${String((e.item as { id: number }).id)}`).sort()).toEqual(expected.sort());
    // Progress never goes backwards within a stage.
    for (const stage of [1, 3]) {
      const counts = itemEvents.filter((e) => e.stage === stage).map((e) => e.processed as number);
      expect(counts).toEqual(counts.map((_, i) => i + 1));
    }
    // The trace file is the event log, line for line.
    const trace = readFileSync(join(TraceWriter.runDir(dataDir, run!), 'run_trace.jsonl'), 'utf8');
    expect(trace).toBe(events.map((e) => `${JSON.stringify(e)}\n`).join(''));
    expect(readFileSync(join(dataDir, 'logs', 'automation_diagnostic.log'), 'utf8')).toContain(`${run!.runId} completed`);
    return { run: run!, events };
  } finally {
    await store.close();
  }
}

describe('crash recovery (SIGKILL, real processes, real SQLite)', () => {
  const dirs: ReturnType<typeof tempDir>[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => d.remove()));

  const scenarios: [string, Record<string, string>, (line: string, lines: string[]) => boolean][] = [
    ['right after the run starts', {}, event('run_started')],
    ['mid-item, with two items in flight', {}, (line, lines) => line.startsWith('STARTED ') && lines.filter((l) => l.startsWith('STARTED ')).length === 4],
    ['mid-stage', {}, event('stage_item_processed', (p) => p[3] === '1')],
    ['between stages', {}, event('stage_complete', (p) => p[3] === '1')],
    ['while pausing', { PAUSE_AFTER: '3' }, event('state_change', (p) => p[4] === 'pausing')],
    ['in the last stage', {}, event('stage_start', (p) => p[3] === '3')],
    ['as the run completes', {}, event('state_change', (p) => p[3] === 'run' && p[4] === 'completed')],
  ];

  for (const [name, env, killWhen] of scenarios) {
    it(`finishes the run exactly once after a kill ${name}`, async () => {
      const dir = tempDir('runstate-crash-');
      dirs.push(dir);
      const first = await live(dir.path, env, killWhen);
      expect(first.ended).toBe('killed');
      const second = await live(dir.path, { RESUME: '1' });
      expect(second.ended).toBe('done');
      expect(second.lines.some((l) => /^(RECOVERED|FINISHED_BEFORE) /.test(l))).toBe(true);
      await checkRun(dir.path);
    });
  }

  it('survives being killed again and again in one run', async () => {
    const dir = tempDir('runstate-crash-');
    dirs.push(dir);
    let lastSeq = 0;
    let kills = 0;
    for (let life = 0; life < 12; life++) {
      // Each life is killed three events after the last durable seq the previous one reached.
      const target = lastSeq + 3;
      const result = await live(dir.path, { RESUME: '1' }, (line) => line.startsWith('EVENT ') && Number(line.split(' ')[1]) >= target);
      const seqs = result.lines.filter((l) => l.startsWith('EVENT ')).map((l) => Number(l.split(' ')[1]));
      lastSeq = Math.max(lastSeq, ...seqs);
      if (result.ended === 'done') break;
      kills += 1;
    }
    expect(kills).toBeGreaterThanOrEqual(5);
    await checkRun(dir.path);
  });
});
