// An external engine for the ingest bench: writes N events for one run as fast as the socket
// takes them (pipelined: it does not wait for one reply to send the next), reads the replies
// in order, and reports how long the last acknowledgement took.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const [socketPath, runId, countArg, tag, rateArg] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const count = Number(countArg);
/** Events per second; 0 (or none): as fast as the socket takes them. */
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
    if (reply.seq! <= lastSeq) ordered = false;
    lastSeq = reply.seq!;
    if (++acked === count) resolve();
  });
});
// 211-byte-ish state changes, as the face_processor sends; each stamped when written.
for (let i = 0; i < count; i++) {
  const line = JSON.stringify({
    run_id: runId,
    event_id: `${tag}-${i}`,
    machine_name: 'face_processor',
    event_type: 'state_change',
    payload: { from_state: 'verifying_dimensions', to_state: 'detecting_faces', event_trigger: 'dimensions_verified', timestamp: (performance.timeOrigin + performance.now()) / 1000 },
  });
  if (!socket.write(`${line}\n`)) await new Promise((r) => socket.once('drain', r));
  if (rate > 0) {
    const due = started + ((i + 1) * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
}
await done;
const ms = performance.now() - started;
socket.end();
process.stdout.write(`${JSON.stringify({ ms, acked, ordered })}\n`);
