// The top of a `node --cpu-prof` profile by self time, for the service part's report: which
// functions the process spent its samples in.
import { readFileSync } from 'node:fs';
import { ROOT } from './harness/child.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  /** Share of all sampled time, 0–1. */
  share: number;
  /** File and line, relative to the repository (node_modules shortened to the package). */
  where: string;
}

function whereOf(url: string, line: number): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return pkg ? pkg[1]! : `${path}:${line + 1}`;
}

/** The `top` entries by self time, grouped by function and place. */
export function summarizeProfile(file: string, top: number): ProfileEntry[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    const frame = byId.get(id)?.callFrame;
    const name = frame?.functionName || '(anonymous)';
    const where = frame ? whereOf(frame.url, frame.lineNumber) : '?';
    const key = `${name} ${where}`;
    const entry = self.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    self.set(key, entry);
  });
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, share: e.us / total }));
}
