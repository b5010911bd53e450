// The purity rule of eslint.config.js, shown on code it must refuse and code it must let by
// (docs/machines.md, "Purity"). Linted with the project's own config, as `npm run lint` does.
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { ESLint, type Linter } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

let eslint: ESLint;
beforeAll(() => {
  eslint = new ESLint({
    cwd: ROOT,
    // The fixtures are not files of the TypeScript project: parse them without types, and so
    // without the two rules that need types (they are not the rule under test).
    overrideConfig: {
      languageOptions: { parserOptions: { projectService: false } },
      rules: { '@typescript-eslint/no-floating-promises': 'off', '@typescript-eslint/no-misused-promises': 'off' },
    },
  });
});

async function lint(code: string, filePath: string): Promise<Linter.LintMessage[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, filePath) });
  return result!.messages;
}

/** The rule and line of each message, for violations one per line. */
async function violations(code: string, filePath = 'machines/x.machine.ts'): Promise<[string | null, number][]> {
  return (await lint(code, filePath)).map((m) => [m.ruleId, m.line]);
}

const CLEAN = `import { assign, setup } from 'xstate';
import { stageActorId } from './events.js';
import type { RunInput } from '../machines/run.machine.js';

export type Input = RunInput & { now: number; jitter: number };
export const m = setup({ types: { context: {} as { since: number; at: Date }, input: {} as Input } }).createMachine({
  context: ({ input }) => ({ since: input.now, at: new Date(input.now) }),
  entry: assign({ since: ({ context }) => context.since + Math.floor(0.5) + stageActorId(1).length }),
});
`;

describe('purity lint of *.machine.ts', () => {
  it('lets a machine that takes its clock and randomness from input pass', async () => {
    expect(await lint(CLEAN, 'machines/x.machine.ts')).toEqual([]);
    expect(await lint(CLEAN, 'web/lib/x.machine.ts')).toEqual([]);
  });

  it('refuses every Node built-in, with and without the node: prefix', async () => {
    const names = builtinModules.filter((m) => !m.startsWith('_'));
    expect(names).toContain('fs');
    for (const name of [...names, ...names.map((m) => `node:${m}`), 'node:test', 'node:sqlite', 'fs/promises']) {
      expect(await violations(`import * as x from '${name}';\nexport default x;\n`), name).toEqual([['no-restricted-imports', 1]]);
    }
    // Re-exports and `import type` count too: a machine's module graph must not reach Node.
    expect(await violations(`export { readFile } from 'node:fs/promises';\n`)).toEqual([['no-restricted-imports', 1]]);
    expect(await violations(`import type { Socket } from 'net';\nexport type S = Socket;\n`)).toEqual([['no-restricted-imports', 1]]);
  });

  it('refuses I/O packages and any import from service/', async () => {
    const code = [
      `import Database from 'better-sqlite3';`,
      `import pg from 'pg';`,
      `import { Client } from 'pg/lib/client.js';`,
      `import pino from 'pino';`,
      `import { WebSocket } from 'ws';`,
      `import fastify from 'fastify';`,
      `import { RunstateError } from '../service/errors.js';`,
      `import type { Store } from '../../service/store/store.js';`,
      `import { x } from './service/x.js';`,
      `export default [Database, pg, Client, pino, WebSocket, fastify, RunstateError, x] as unknown as Store;`,
    ].join('\n');
    expect(await violations(code)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((line) => ['no-restricted-imports', line]));
    // A name that only contains the word is not the service.
    expect(await violations(`import { a } from './services-list.js';\nexport default a;\n`)).toEqual([]);
  });

  it('refuses the clock, randomness and timers', async () => {
    const code = [
      `export const a = Date.now();`,
      `export const b = Math.random();`,
      `export const c = new Date();`,
      `export const d = Date();`,
      `export const e = performance.now();`,
      `setTimeout(() => {}, 1);`,
      `setInterval(() => {}, 1);`,
      `setImmediate(() => {});`,
      `queueMicrotask(() => {});`,
      `globalThis.setTimeout(() => {}, 1);`,
      `clearTimeout(0);`,
      `export const f = crypto.randomUUID();`,
      `export const g = fetch('/x');`,
      `export const h = import('./y.js');`,
    ].join('\n');
    const found = await violations(code);
    expect(found.map(([, line]) => line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    expect(new Set(found.map(([rule]) => rule))).toEqual(
      new Set(['no-restricted-properties', 'no-restricted-syntax', 'no-restricted-globals']),
    );
  });

  it('covers every file of machines/ and *.machine.ts anywhere, and nothing else', async () => {
    const bad = `import { readFileSync } from 'node:fs';\nexport const t = Date.now() + readFileSync.length;\n`;
    for (const path of ['machines/x.machine.ts', 'machines/events.ts', 'web/lib/connection.machine.ts', 'web/lib/deep/y.machine.ts']) {
      expect(await violations(bad, path), path).toEqual([['no-restricted-imports', 1], ['no-restricted-properties', 2]]);
    }
    // The service owns the clock and the disk.
    expect(await violations(bad, 'service/engine/x.ts')).toEqual([]);
  });
});
