// `runstate tail <run_id>`: follows a run over the WebSocket (`/ws`, docs/protocol.md) until
// it finishes; after a dropped connection it subscribes again with `after_seq`, losing nothing.
import { WebSocket } from 'ws';
import type { ProcessingView, RunView } from '../engine/view.js';
import { ServiceError, call, type Target } from './client.js';
import { FINAL, apply, fromView, screen, summaryLines, type Progress, type WireEvent } from './progress.js';

export interface TailOptions {
  out?: NodeJS.WriteStream;
  err?: NodeJS.WritableStream;
  /** Bars redrawn in place; plain lines when false. [out.isTTY] */
  tty?: boolean;
}

type Frame =
  | { type: 'snapshot' | 'reset'; seq: number; run: RunView & { processing?: ProcessingView | null } }
  | { type: 'event'; seq: number; event: WireEvent }
  | { type: 'error'; code: string; message: string };

const BACKOFF_MS = [250, 500, 1000, 2000, 5000];

/** Resolves with the run's final status once it is completed, failed or cancelled. */
export async function tail(target: Target, runId: string, opts: TailOptions = {}): Promise<string> {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const tty = opts.tty ?? out.isTTY === true;
  let progress: Progress | null = null;
  let lastSeq: number | null = null;
  let drawn = 0;
  let dirty = false;

  const draw = () => {
    if (!tty || !progress) return;
    const lines = screen(progress, out.columns || 100);
    // Back to the top of the last drawing, then each line cleared and written again.
    out.write(`${drawn > 0 ? `\x1b[${drawn}F` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}${drawn > lines.length ? '\x1b[J' : ''}`);
    drawn = lines.length;
    dirty = false;
  };
  const redraw = tty ? setInterval(() => dirty && draw(), 100) : undefined;
  // Events do not say which items are in flight; the processing card does.
  const poll = tty
    ? setInterval(() => {
        if (!progress || FINAL.includes(progress.status)) return;
        call<ProcessingView | null>(target, 'GET', `/current_processing/?run_id=${encodeURIComponent(runId)}`)
          .then(({ data }) => {
            if (progress && data) {
              progress.inFlight = data.currently_processing;
              dirty = true;
            }
          })
          .catch(() => undefined);
      }, 1000)
    : undefined;

  const line = (text: string) => {
    if (!tty) out.write(`${text}\n`);
  };

  try {
    for (let attempt = 0; ; attempt++) {
      const outcome = await follow();
      if (outcome.final !== undefined) return outcome.final;
      if (progress === null && !outcome.opened) throw new ServiceError(`Cannot reach runstate at ${target.url}: ${outcome.reason}.`);
      const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]!;
      if (outcome.opened) attempt = 0;
      err.write(`runstate: connection lost (${outcome.reason}); reconnecting in ${wait} ms, from seq ${lastSeq ?? 0}\n`);
      await new Promise((r) => setTimeout(r, wait));
    }
  } finally {
    if (redraw) clearInterval(redraw);
    if (poll) clearInterval(poll);
    if (tty) draw();
  }

  /** One connection: resolves with the final status, or with why it dropped. */
  function follow(): Promise<{ final?: string; opened: boolean; reason: string }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${target.url.replace(/^http/, 'ws')}/ws`, { headers: { authorization: `Token ${target.token}` } });
      let opened = false;
      let settled = false;
      const finish = (value: { final?: string; opened: boolean; reason: string } | Error) => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => {
          let message = `The service refused the WebSocket (${res.statusCode}).`;
          let code: string | null = null;
          try {
            const parsed = JSON.parse(body) as { error?: { code?: string; message?: string } };
            message = parsed.error?.message ?? message;
            code = parsed.error?.code ?? null;
          } catch {
            // not JSON: keep the status
          }
          // A refused token or site is not a dropped connection: retrying changes nothing.
          if (res.statusCode !== undefined && res.statusCode < 500) finish(new ServiceError(message, code, res.statusCode));
          else finish({ opened, reason: message });
        });
      });
      ws.on('open', () => {
        opened = true;
        ws.send(JSON.stringify({ type: 'subscribe', topic: `run:${runId}`, ...(lastSeq !== null ? { after_seq: lastSeq } : {}) }));
      });
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data)) as Frame;
        if (frame.type === 'error') {
          finish(new ServiceError(frame.message, frame.code));
          return;
        }
        if (frame.type === 'snapshot' || frame.type === 'reset') {
          progress = fromView(frame.run);
          lastSeq = frame.seq;
          if (tty) dirty = true;
          else summaryLines(progress).forEach(line);
        } else if (frame.type === 'event' && progress) {
          if (lastSeq !== null && frame.seq <= lastSeq) return;
          lastSeq = frame.seq;
          const text = apply(progress, frame.event);
          if (text !== null) line(text);
          dirty = true;
        }
        if (progress && FINAL.includes(progress.status)) {
          line(`run ${progress.runId}: ${progress.status}`);
          finish({ final: progress.status, opened, reason: 'finished' });
        }
      });
      ws.on('close', (code, reason) => finish({ opened, reason: `close ${code}${reason.length ? ` ${reason.toString()}` : ''}` }));
      ws.on('error', (e: Error & { code?: string }) => finish({ opened, reason: e.code ?? e.message }));
    });
  }
}
