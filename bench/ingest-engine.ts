// An external engine for the ingest part: `ingest-engine.ts <socket> <runId> <count> <tag> [rate]` writes <count>
// events, pipelined (or at <rate>/s), reads the replies in order, and hands back when the last was acknowledged.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { finish } from './harness/child.js';

const [socketPath, runId, countArg, tag, rateArg] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const count = Number(countArg);
const rate = Number(rateArg ?? 0);
const socket = connect(socketPath);
await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));

let acked = 0;
let lastSeq = 0;
let ordered = true;
const started = performance.now();
const done = new Promise<void>((resolve, reject) => {
  createInterface({ input: socket }).on('line', (line) => {
    const reply = JSON.parse(line) as { ok: boolean; seq?: number; error?: unknown };
    if (!reply.ok) return reject(new Error(`refused: ${JSON.stringify(reply.error)}`));
    ordered &&= reply.seq! > lastSeq;
    lastSeq = reply.seq!;
    if (++acked === count) resolve();
  });
});
// About 210-byte state changes, as the face_processor sends; each stamped as it is written.
for (let i = 0; i < count; i++) {
  const payload = { from_state: 'verifying_dimensions', to_state: 'detecting_faces', event_trigger: 'dimensions_verified', timestamp: (performance.timeOrigin + performance.now()) / 1000 };
  const line = JSON.stringify({ run_id: runId, event_id: `${tag}-${i}`, machine_name: 'face_processor', event_type: 'state_change', payload });
  if (!socket.write(`${line}\n`)) await new Promise((r) => socket.once('drain', r));
  const wait = rate > 0 ? started + ((i + 1) * 1000) / rate - performance.now() : 0;
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
}
await done;
const ms = performance.now() - started;
socket.end();
finish({ ms, acked, ordered });
