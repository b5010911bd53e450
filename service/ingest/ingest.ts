import { canSeeSite, type Principal } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import type { IngestReply } from '../engine/kinds/external.js';
import { RunstateError, ingestFailure } from '../errors.js';
import { parseIngestEvent, type IngestEvent } from './events.js';

/**
 * The doors' common path: each raw event is checked, then consecutive events of one run are
 * appended together, runs one after another, so replies and seqs keep the order sent.
 */
export async function ingest(engine: Engine, principal: Principal, raws: readonly unknown[]): Promise<IngestReply[]> {
  const replies: IngestReply[] = new Array<IngestReply>(raws.length);
  let group: { runId: string; events: IngestEvent[]; at: number[] } | null = null;
  const canSee = (siteId: string) => canSeeSite(principal, siteId);
  const flush = async () => {
    if (!group) return;
    const { runId, events, at } = group;
    group = null;
    const res = await engine.external.ingest(runId, events, canSee);
    res.forEach((r, k) => (replies[at[k]!] = r));
  };
  for (const [i, raw] of raws.entries()) {
    let event: IngestEvent;
    try {
      event = parseIngestEvent(raw);
    } catch (err) {
      if (!(err instanceof RunstateError)) throw err;
      replies[i] = ingestFailure(err);
      continue;
    }
    if (group && group.runId !== event.run_id) await flush();
    group ??= { runId: event.run_id, events: [], at: [] };
    group.events.push(event);
    group.at.push(i);
  }
  await flush();
  return replies;
}
