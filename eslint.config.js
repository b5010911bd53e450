import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Machines are pure (docs/machines.md, "Purity"): no Node built-ins, no I/O, no clock, no
// randomness, no timers. Effects arrive through machine.provide(); time and chance arrive in
// events and input. These rules hold for machines/ and for every *.machine.ts elsewhere.
const PURE = 'a machine stays pure (docs/machines.md, "Purity"): effects come in through machine.provide(), time and randomness in events or input.';
// Node's list, each with and without `node:`, and the modules that exist only with the prefix
// (builtinModules leaves those out).
const PREFIX_ONLY = ['node:sea', 'node:sqlite', 'node:test', 'node:test/reporters'];
const NODE_BUILTINS = [...new Set([...builtinModules.flatMap((m) => (m.startsWith('node:') ? [m] : [m, `node:${m}`])), ...PREFIX_ONLY])];
const IO_PACKAGES = ['better-sqlite3', 'pg', 'pino', 'ws', 'fastify'];
const TIMERS = ['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'clearTimeout', 'clearInterval', 'clearImmediate', 'requestAnimationFrame', 'requestIdleCallback'];
const GLOBAL_OBJECTS = ['globalThis', 'window', 'self', 'global'];

export const machinePurity = {
  files: ['machines/**/*.ts', '**/*.machine.ts'],
  rules: {
    'no-restricted-imports': ['error', {
      paths: NODE_BUILTINS.map((name) => ({ name, message: `Node built-in: ${PURE}` })),
      patterns: [
        { group: IO_PACKAGES.flatMap((p) => [p, `${p}/*`, `@${p}/*`]), message: `I/O package: ${PURE}` },
        // Any relative path through a `service` directory: the service depends on the machines, never the reverse.
        { regex: '^\\.{1,2}/(?:.*/)?service(?:/|$)', message: `service/ is I/O: ${PURE}` },
      ],
    }],
    'no-restricted-globals': ['error',
      ...TIMERS.map((name) => ({ name, message: `Timer: ${PURE}` })),
      ...['fetch', 'WebSocket', 'XMLHttpRequest', 'process'].map((name) => ({ name, message: `I/O: ${PURE}` })),
    ],
    'no-restricted-properties': ['error',
      { object: 'Date', property: 'now', message: `Clock: ${PURE}` },
      { object: 'performance', property: 'now', message: `Clock: ${PURE}` },
      { object: 'Math', property: 'random', message: `Randomness: ${PURE}` },
      { object: 'crypto', property: 'randomUUID', message: `Randomness: ${PURE}` },
      { object: 'crypto', property: 'getRandomValues', message: `Randomness: ${PURE}` },
      ...GLOBAL_OBJECTS.flatMap((object) => TIMERS.map((property) => ({ object, property, message: `Timer: ${PURE}` }))),
    ],
    'no-restricted-syntax': ['error',
      // `new Date()` and `Date()` read the clock; `new Date(ms)` only converts.
      { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: `Clock: ${PURE}` },
      { selector: "CallExpression[callee.name='Date']", message: `Clock: ${PURE}` },
      { selector: "ImportExpression", message: `Dynamic import: ${PURE}` },
    ],
  },
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'web/.next/**', 'web/out/**', 'web/next-env.d.ts', 'web/next.config.mjs', 'test-artifacts/**', 'docs/**', 'scratch/**', 'eslint.config.js', 'scripts/*.mjs', 'bin/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // An unawaited promise in a broadcast or persistence path is the bug class this product exists to end.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  machinePurity,
);
