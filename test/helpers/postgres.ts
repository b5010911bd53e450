// A real, throw-away Postgres for tests: never a mock, never skipped.
//
// With RUNSTATE_TEST_DATABASE_URL (or DATABASE_URL) set, that server is used: each test gets a
// database `test_<random>` created on it and dropped after; nothing else there is touched.
// Otherwise a private server is started from the Postgres binaries on the machine
// (/usr/lib/postgresql/<version>/bin, newest first, then PATH): initdb into a temp dir (in
// /dev/shm when there is room), postgres on a free port of 127.0.0.1 with its socket in that
// dir, durability off. As root, both run as the OS user `postgres`, since they refuse to run as
// root. No binaries is a failure, not a skip.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll } from 'vitest';

export interface TestDatabase {
  name: string;
  url: string;
  /** Drops the database, ending any connection still open on it. */
  drop(): Promise<void>;
}

export interface PostgresServer {
  readonly source: 'external' | 'local';
  /** Milliseconds from the call to a server that accepts connections. */
  readonly startupMs: number;
  /** The URL of `database` on this server. */
  url(database: string): string;
  /** A new empty database, dropped by its `drop()` or at the latest by `stop()`. */
  createDatabase(): Promise<TestDatabase>;
  /** Drops the databases left over; a local server is then stopped and its directory removed. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/** Starts (or reaches) a Postgres; see the top of this file. */
export async function startPostgres(): Promise<PostgresServer> {
  const started = performance.now();
  const external = process.env.RUNSTATE_TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (external) {
    const url = (database: string): string => {
      const u = new URL(external);
      u.pathname = `/${encodeURIComponent(database)}`;
      return u.toString();
    };
    const admin = new Client({ connectionString: external });
    await admin.connect();
    return serverOn({ source: 'external', startupMs: performance.now() - started, url, admin, shutdown: async () => {} });
  }
  return startLocal(started);
}

/**
 * One server for the test file (started in `beforeAll`, stopped in `afterAll`); call at the top
 * level of the file or of a `describe`.
 */
export function usePostgres(): { server(): PostgresServer; createDatabase(): Promise<TestDatabase> } {
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    server = await startPostgres();
  }, READY_TIMEOUT_MS * 3);
  afterAll(async () => {
    await server?.stop();
    server = undefined;
  });
  const current = (): PostgresServer => {
    if (!server) throw new Error('usePostgres(): the server is used outside the tests of the file that started it');
    return server;
  };
  return { server: current, createDatabase: () => current().createDatabase() };
}

interface ServerParts {
  source: PostgresServer['source'];
  startupMs: number;
  url(database: string): string;
  admin: Client;
  shutdown(): Promise<void>;
}

function serverOn(parts: ServerParts): PostgresServer {
  const { admin } = parts;
  const live = new Set<string>();
  const drop = async (name: string): Promise<void> => {
    if (!live.delete(name)) return;
    await admin.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`);
  };
  let stopped = false;
  return {
    source: parts.source,
    startupMs: parts.startupMs,
    url: parts.url,
    async createDatabase() {
      const name = `test_${randomBytes(6).toString('hex')}`;
      await admin.query(`CREATE DATABASE ${quote(name)}`);
      live.add(name);
      return { name, url: parts.url(name), drop: () => drop(name) };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        for (const name of [...live]) await drop(name);
        await admin.end();
      } finally {
        await parts.shutdown();
      }
    },
  };
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** Where initdb and postgres are: /usr/lib/postgresql/<version>/bin, newest first, then PATH. */
export function findPostgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((v) => /^\d+(\.\d+)?$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const candidates = [
    ...versions.map((v) => path.join(root, v, 'bin')),
    ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean),
  ];
  const found = candidates.find((dir) => ['initdb', 'postgres'].every((bin) => isExecutable(path.join(dir, bin))));
  if (!found) {
    throw new Error(
      'Postgres tests need a server and none was found: no initdb and postgres in /usr/lib/postgresql/*/bin or on PATH, ' +
        'and neither RUNSTATE_TEST_DATABASE_URL nor DATABASE_URL is set. ' +
        'Install the server (Debian: apt-get install -y postgresql-15) or point RUNSTATE_TEST_DATABASE_URL at a server ' +
        'where the tests may create and drop databases.',
    );
  }
  return found;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** initdb and postgres refuse to run as root: as root, they run as `postgres`. */
function serverUser(): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(
      'Postgres tests run as root here, and initdb/postgres refuse to run as root, but there is no OS user `postgres` to run them as. ' +
        'Create one (useradd --system postgres; Debian\'s postgresql packages do) or set RUNSTATE_TEST_DATABASE_URL.',
    );
  }
  return { name: 'postgres', uid: Number(uid), gid: Number(gid) };
}

/**
 * /dev/shm when there is room: on a disk that other jobs keep busy, CREATE DATABASE (which copies
 * the template) takes ~300 ms per test; in memory, ~20 ms.
 */
function scratchRoot(): string {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK | fs.constants.X_OK);
    const { bavail, bsize } = fs.statfsSync('/dev/shm');
    // A container's /dev/shm may be 64 MiB: too small for a cluster and its test databases.
    if (bavail * bsize >= 1024 ** 3) return '/dev/shm';
  } catch {
    // No usable /dev/shm.
  }
  return os.tmpdir();
}

/** util-linux's runuser: root's PATH has /usr/sbin, but a test runner's may not. */
function runuser(): string {
  return ['/usr/sbin/runuser', '/sbin/runuser'].find(isExecutable) ?? 'runuser';
}

async function startLocal(started: number): Promise<PostgresServer> {
  const binDir = findPostgresBinDir();
  const user = serverUser();
  const dir = fs.mkdtempSync(path.join(scratchRoot(), 'runstate-pg-'));
  try {
    if (user) fs.chownSync(dir, user.uid, user.gid);
    const dataDir = path.join(dir, 'data');
    const command = (bin: string, args: string[]): [string, string[]] =>
      user ? [runuser(), ['-u', user.name, '--', path.join(binDir, bin), ...args]] : [path.join(binDir, bin), args];

    await run(
      ...command('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']),
      dir,
    );

    // A free port can be taken between the probe and postgres' bind: then try another.
    for (let attempt = 1; ; attempt += 1) {
      const port = await freePort();
      const [cmd, args] = command('postgres', [
        '-D', dataDir,
        '-p', String(port),
        '-k', dir,
        '-c', 'listen_addresses=127.0.0.1',
        // Throw-away data: no durability, no background work.
        '-c', 'fsync=off',
        '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off',
        '-c', 'autovacuum=off',
        '-c', 'max_connections=200',
        '-c', 'shared_buffers=32MB',
        '-c', 'log_min_messages=warning',
      ]);
      const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      const output = tail(child);
      const url = (database: string): string => `postgresql://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
      let admin: Client;
      try {
        admin = await waitReady(child, output, url('postgres'));
      } catch (err) {
        await kill(child, dataDir);
        if (attempt < 3 && /could not bind|already in use/i.test(output())) continue;
        throw err;
      }
      const onExit = (): void => {
        killNow(dataDir);
        fs.rmSync(dir, { recursive: true, force: true });
      };
      process.once('exit', onExit);
      return serverOn({
        source: 'local',
        startupMs: performance.now() - started,
        url,
        admin,
        async shutdown() {
          process.off('exit', onExit);
          try {
            await kill(child, dataDir);
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        },
      });
    }
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const output = tail(child);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${[cmd, ...args].join(' ')} exited with ${code ?? signal}:\n${output()}`));
    });
  });
}

/** The last 16 KiB the child printed, for error messages. */
function tail(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer): void => {
    text = (text + chunk.toString('utf8')).slice(-16_384);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Connects as soon as the server accepts connections; fails if it exits or takes too long. */
async function waitReady(child: ChildProcess, output: () => string, url: string): Promise<Client> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = String(code ?? signal);
  });
  child.once('error', (err) => {
    exited = err.message;
  });
  for (;;) {
    if (exited !== undefined) throw new Error(`postgres exited (${exited}) before accepting connections:\n${output()}`);
    const client = new Client({ connectionString: url });
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      if (performance.now() > deadline) {
        throw new Error(`postgres did not accept connections within ${READY_TIMEOUT_MS} ms (${(err as Error).message}):\n${output()}`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Immediate shutdown (SIGQUIT to the postmaster), then SIGKILL if it is still there after a while. */
async function kill(child: ChildProcess, dataDir: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = postmasterPid(dataDir) ?? child.pid;
  if (pid !== undefined) signal(pid, 'SIGQUIT');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
  });
  const late = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) {
    if (pid !== undefined) signal(pid, 'SIGKILL');
    child.kill('SIGKILL');
    await exited;
  }
}

/** For a test process that exits without its afterAll: no postgres is left behind. */
function killNow(dataDir: string): void {
  const pid = postmasterPid(dataDir);
  if (pid !== undefined) signal(pid, 'SIGKILL');
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}
