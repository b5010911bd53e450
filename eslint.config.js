import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    // Machines are pure: no Node built-ins, no I/O. Effects arrive through machine.provide().
    files: ['machines/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['node:*', 'fs', 'path', 'net', 'http', 'child_process', 'better-sqlite3', 'pg', 'pino'], message: 'machines/ stays pure: effects come in through machine.provide().' },
      ] }],
    },
  },
);
