// Site topics: `site:<id>` and `site:*`, a snapshot of the open runs, then each changed run, coalesced.
import type { Logger } from 'pino';
import { canSeeSite } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import type { RunView } from '../engine/view.js';
import { RunstateError } from '../errors.js';
import type { Client } from './client.js';
import { type Frame, frames } from './frames.js';
import { type AllSitesTopic, type SiteTopic, topics } from './topics.js';

/** Open runs in a site snapshot, newest first. */
const SNAPSHOT_RUNS = 100;

export interface SiteFeedOptions {
  engine: Engine;
  logger: Logger;
  send: (client: Client, frames: readonly Frame[]) => void;
  /** How often subscribers get the runs that changed. */
  intervalMs: number;
}

interface Entry {
  ready: boolean;
  /** Runs that changed while the snapshot was read: sent again once it is. */
  missed: Set<string>;
}

/**
 * A run that changes is marked; every interval each marked run is read once, framed once per
 * topic, and sent to that site's subscribers and to the `site:*` subscribers who may see it.
 */
export class SiteFeed {
  readonly #opts: SiteFeedOptions;
  /** Topic name (`site:<id>` or `site:*`) → subscribers; each is ready once its snapshot is sent. */
  readonly #subs = new Map<string, Map<Client, Entry>>();
  /** Runs with changes subscribers have not been told of. */
  readonly #dirty = new Set<string>();
  readonly #timer: NodeJS.Timeout;

  constructor(opts: SiteFeedOptions) {
    this.#opts = opts;
    this.#timer = setInterval(() => this.#flush(), opts.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#subs.clear();
  }

  changed(runId: string): void {
    this.#dirty.add(runId);
  }

  async subscribe(client: Client, topic: SiteTopic | AllSitesTopic): Promise<void> {
    const { principal } = client;
    if (topic.kind === 'site' && !canSeeSite(principal, topic.id)) throw new RunstateError('FORBIDDEN', `This token may not reach site ${topic.id}.`);
    const entry: Entry = { ready: false, missed: new Set() };
    let subs = this.#subs.get(topic.name);
    if (!subs) this.#subs.set(topic.name, (subs = new Map()));
    subs.set(client, entry);
    // site:* is the token's sites; the admin's are all of them.
    const siteIds = topic.kind === 'site' ? [topic.id] : principal.siteIds === null ? undefined : [...principal.siteIds];
    const runs = siteIds?.length === 0 ? [] : await this.#opts.engine.listRuns({ ...(siteIds ? { siteIds } : {}), open: true, limit: SNAPSHOT_RUNS });
    if (client.closed || this.#subs.get(topic.name)?.get(client) !== entry) return;
    this.#opts.send(client, [frames.siteSnapshot(topic.name, runs)]);
    entry.ready = true;
    for (const runId of entry.missed) this.#dirty.add(runId);
    entry.missed.clear();
  }

  unsubscribe(client: Client, topicName: string): void {
    const subs = this.#subs.get(topicName);
    subs?.delete(client);
    if (subs?.size === 0) this.#subs.delete(topicName);
  }

  #flush(): void {
    if (this.#dirty.size === 0) return;
    const dirty = [...this.#dirty];
    this.#dirty.clear();
    if (this.#subs.size === 0) return;
    for (const runId of dirty) {
      this.#opts.engine
        .getRun(runId)
        .then((run) => run && this.#deliver(run))
        .catch((err: unknown) => this.#opts.logger.error({ err, runId }, 'site update failed'));
    }
  }

  #deliver(run: RunView): void {
    const site = topics.site(run.site_id).name;
    for (const [name, subs] of [[site, this.#subs.get(site)], [topics.allSites.name, this.#subs.get(topics.allSites.name)]] as const) {
      if (!subs || subs.size === 0) continue;
      let frame: Frame | undefined;
      for (const [client, entry] of subs) {
        if (!canSeeSite(client.principal, run.site_id)) continue;
        if (!entry.ready) {
          entry.missed.add(run.run_id);
          continue;
        }
        this.#opts.send(client, [(frame ??= frames.run(name, run))]);
      }
    }
  }
}
