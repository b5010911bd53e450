// Builds the dashboard (web/, a Next.js static export) when the build is missing or older
// than its sources; `npm start` runs this first. Plain Node, so it needs nothing compiled.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const web = join(root, 'web');
const stamp = join(web, 'out', '.runstate-build');
const lock = join(web, '.build-lock');

function sources(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (['out', '.next', 'node_modules', '.build-lock'].includes(name)) return [];
    return statSync(path).isDirectory() ? sources(path) : [path];
  });
}

/** The service files web/ imports types from (and what those import in turn). */
const SERVICE_TYPES = ['engine/view.ts', 'engine/commands.ts', 'events.ts', 'hub/frames.ts', 'errors.ts', 'store/store.ts'];

/** A digest of everything the build depends on: web's sources, machines/, the service types they import, the lockfile. */
function digest() {
  const hash = createHash('sha256');
  const service = SERVICE_TYPES.map((f) => join(root, 'service', f)).filter((f) => existsSync(f));
  const files = [...sources(web), ...sources(join(root, 'machines')), join(root, 'package-lock.json'), ...service].sort();
  for (const f of files) hash.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  return hash.digest('hex');
}

const want = digest();
if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want) process.exit(0);

// One build at a time (two services started together would otherwise build into one dir).
for (let waited = 0; ; waited += 200) {
  try {
    mkdirSync(lock);
    break;
  } catch {
    if (waited > 180_000) rmSync(lock, { recursive: true, force: true });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  }
}
try {
  if (!(existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want)) {
    process.stderr.write('runstate: building the dashboard (web/)…\n');
    const res = spawnSync(process.execPath, [join(root, 'node_modules', 'next', 'dist', 'bin', 'next'), 'build', '--webpack', web], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' },
    });
    if (res.status !== 0) {
      process.stderr.write('runstate: the dashboard build failed; see above.\n');
      process.exitCode = res.status ?? 1;
    } else {
      writeFileSync(stamp, `${want}\n`);
    }
  }
} finally {
  rmSync(lock, { recursive: true, force: true });
}
