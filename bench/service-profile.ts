// The top of a `node --cpu-prof` profile by self time, for the service part's report.
import { readFileSync } from 'node:fs';
import { ROOT } from './harness/child.js';

type CallFrame = { functionName: string; url: string; lineNumber: number };

/** File and line, relative to the repository (node_modules shortened to the package). */
function whereOf({ url, lineNumber }: CallFrame): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
  return /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1] ?? `${path}:${lineNumber + 1}`;
}

/** The `top` functions by self time, grouped by name and place, with their `share` (0–1) of all sampled time. */
export function summarizeProfile(file: string, top: number): { name: string; where: string; share: number }[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: { id: number; callFrame: CallFrame }[]; samples: number[]; timeDeltas: number[] };
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const frame = frames.get(id);
    const name = frame?.functionName || '(anonymous)';
    const where = frame ? whereOf(frame) : '?';
    const entry = self.get(`${name} ${where}`) ?? { name, where, us: 0 };
    entry.us += us;
    total += us;
    self.set(`${name} ${where}`, entry);
  });
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map(({ name, where, us }) => ({ name, where, share: us / total }));
}
