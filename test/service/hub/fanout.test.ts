import { describe, expect, it } from 'vitest';
import type { Client } from '../../../service/hub/client.js';
import { RunFanout } from '../../../service/hub/fanout.js';
import type { Frame } from '../../../service/hub/frames.js';
import { topics } from '../../../service/hub/topics.js';
import type { Engine } from '../../../service/engine/engine.js';
import type { StoredEvent } from '../../../service/store/store.js';

const RUN = 'run_20250101_000000_manual';

/** The text payloads of the unmasked server frames in `bytes`, in order. */
function payloads(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < bytes.length; ) {
    let len = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at + 2));
      head = 10;
    }
    out.push(bytes.subarray(at + head, at + head + len).toString());
    at += head + len;
  }
  return out;
}

function event(seq: number): StoredEvent {
  return { event: 'activity_log', run_id: RUN, seq, message: `m${seq}`, timestamp: '2026-01-01T00:00:00.000Z' } as StoredEvent;
}

describe('run fan-out', () => {
  it('sends a batch to every live subscriber in seq order, as one shared write, and only what each has not had', async () => {
    const sent = new Map<number, Frame[][]>();
    const engine = { durableView: async () => ({ seq: 2, run: { site_id: 's' } }) } as unknown as Engine;
    const fanout = new RunFanout({ engine, send: (client, frames) => void (sent.get(client.id) ?? sent.set(client.id, []).get(client.id)!).push([...frames]) });
    const client = (id: number) => ({ id, closed: false, principal: { siteIds: null } }) as unknown as Client;
    const [a, b] = [client(1), client(2)];
    const topic = topics.run(RUN);
    await fanout.subscribe(a, topic, undefined);
    await fanout.subscribe(b, topic, undefined);
    // Both start from the snapshot at seq 2.
    fanout.publish(RUN, [event(3)], 0);
    sent.clear();
    fanout.publish(RUN, [event(4), event(5), event(6)], 0);
    const [batchA] = sent.get(1)!;
    const [batchB] = sent.get(2)!;
    expect(batchA).toHaveLength(1);
    expect(batchB![0]).toBe(batchA![0]);
    const bytes = Buffer.concat(batchA![0]!.chunks);
    expect(bytes.length).toBe(batchA![0]!.bytes);
    expect(payloads(bytes).map((p) => (JSON.parse(p) as { seq: number }).seq)).toEqual([4, 5, 6]);
    // A batch overlapping what a subscriber has had: only the rest, still in order.
    sent.clear();
    fanout.publish(RUN, [event(5), event(6), event(7)], 0);
    expect(sent.get(1)!.flat().flatMap((f) => payloads(Buffer.concat(f.chunks))).map((p) => (JSON.parse(p) as { seq: number }).seq)).toEqual([7]);
  });
});
