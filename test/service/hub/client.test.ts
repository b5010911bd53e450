import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { Client } from '../../../service/hub/client.js';
import { frame, frames } from '../../../service/hub/frames.js';
import type { RunView } from '../../../service/engine/view.js';

const admin = { name: 'admin', admin: true, accountId: null, siteIds: null };

/** A client whose peer never reads: past 64 bytes the socket pushes back and frames queue. */
function stalled(queueBytes = 64 * 1024) {
  const socket = new PassThrough({ highWaterMark: 64 });
  const client = new Client(1, {} as WebSocket, socket, admin, { queueBytes, messagesPerSecond: 20, onDelivered: () => {} }, performance.now());
  return { client, socket };
}

const view = (seq: number) => frames.view('run:r', seq, { last_seq: seq } as unknown as RunView, null);
const error = () => frame({ type: 'error', code: 'BAD_REQUEST', message: 'x'.repeat(100) });

describe('Client', () => {
  it('keeps only the newest unsent view of a topic in its queue, in the place of the older one', () => {
    const { client, socket } = stalled();
    client.sendAll([error()]);
    expect(socket.writableNeedDrain).toBe(true);
    const held = client.pendingBytes;
    client.sendAll([view(1)]);
    const withOne = client.pendingBytes;
    for (let seq = 2; seq <= 500; seq++) expect(client.sendAll([view(seq)])).toBe(true);
    expect(client.pendingBytes).toBe(withOne + (view(500).bytes - view(1).bytes));
    client.sendAll([error()]);
    expect(client.pendingBytes).toBeGreaterThan(held);
    // What reaches the peer once it reads: the error, the newest view, the second error.
    const seen: string[] = [];
    socket.on('data', (chunk: Buffer) => seen.push(chunk.toString('utf8')));
    socket.resume();
    return new Promise<void>((resolve) => setImmediate(() => {
      const text = seen.join('');
      expect(text.match(/"type":"view"/g)).toHaveLength(1);
      expect(text).toContain('"seq":500');
      expect(text.indexOf('"seq":500')).toBeLessThan(text.lastIndexOf('"type":"error"'));
      resolve();
    }));
  });

  it('queues frames of no slot one after another, up to its bound', () => {
    const { client } = stalled(1024);
    client.sendAll([error()]);
    let ok = true;
    for (let i = 0; i < 20 && ok; i++) ok = client.sendAll([error()]);
    expect(ok).toBe(false);
    expect(client.pendingBytes).toBeLessThanOrEqual(1024 + error().bytes);
  });
});
