// Topic names (docs/protocol.md): `run:<run_id>`, `site:<site_id>` and `site:*`, built and read here only.
import { RunstateError } from '../errors.js';
import { isName } from '../ids.js';

export interface RunTopic {
  kind: 'run';
  id: string;
  name: string;
}
export interface SiteTopic {
  kind: 'site';
  id: string;
  name: string;
}
/** Every site the subscriber's token may see. */
export interface AllSitesTopic {
  kind: 'sites';
  name: 'site:*';
}
export type Topic = RunTopic | SiteTopic | AllSitesTopic;

const ALL_SITES: AllSitesTopic = Object.freeze({ kind: 'sites', name: 'site:*' });
const EXPECTED = 'expected "run:<run_id>", "site:<site_id>" or "site:*"';

export const topics = {
  run(id: string): RunTopic {
    return { kind: 'run', id, name: `run:${id}` };
  },
  site(id: string): SiteTopic {
    return { kind: 'site', id, name: `site:${id}` };
  },
  allSites: ALL_SITES,

  /**
   * A topic as a client names it. Run ids are checked where the run is looked up (a bad one
   * is `INVALID_RUN_ID`, not a bad topic); site ids must be names.
   */
  parse(raw: unknown): Topic {
    if (typeof raw !== 'string') throw new RunstateError('INVALID_TOPIC', `Expected \`topic\` to be a string: ${EXPECTED}.`);
    const colon = raw.indexOf(':');
    const kind = raw.slice(0, colon);
    const id = raw.slice(colon + 1);
    if (colon > 0 && id.length > 0 && id.length <= 100) {
      if (kind === 'run') return topics.run(id);
      if (kind === 'site' && id === '*') return ALL_SITES;
      if (kind === 'site' && isName(id)) return topics.site(id);
    }
    throw new RunstateError('INVALID_TOPIC', `Unknown topic ${JSON.stringify(raw.slice(0, 120))}: ${EXPECTED}.`);
  },
};
