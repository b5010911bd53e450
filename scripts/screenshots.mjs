// Regenerates the README's screenshots: runs the dashboard's and the approval gate's e2e
// accessibility tests (Debian's Chromium), which take them, and copies them from
// test-artifacts/e2e/ to docs/screenshots/.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const from = join(root, 'test-artifacts', 'e2e');
const to = join(root, 'docs', 'screenshots');
const build = spawnSync(process.execPath, [join(root, 'scripts', 'ensure-web.mjs')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const run = spawnSync(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/e2e/dashboard.test.ts', 'test/e2e/approval.test.ts', '-t', 'accessibility'], { cwd: root, stdio: 'inherit' });
if (run.status !== 0) process.exit(run.status ?? 1);
mkdirSync(to, { recursive: true });
const shots = readdirSync(from).filter((f) => f.startsWith('readme-') && f.endsWith('.png'));
for (const f of shots) copyFileSync(join(from, f), join(to, f.slice('readme-'.length)));
process.stdout.write(`docs/screenshots/: ${shots.map((f) => f.slice('readme-'.length)).join(', ')}\n`);
