// A throw-away Postgres that a test can stop and start again on the same port and data, as an
// operator would (`pg_ctl stop -m fast`, `pg_ctl start`): for the fault tests. Built from the
// machine's binaries like ./postgres.ts; as root, the server runs as the OS user `postgres`.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { findPostgresBinDir } from './postgres.js';
import { freePort } from './net.js';

const exec = promisify(execFile);

export interface ControlledPostgres {
  readonly port: number;
  /** The URL of `database`, with `password` in it when given (the server trusts every local login, so any will do). */
  url(database: string, password?: string): string;
  /** A new empty database; returns its name. */
  createDatabase(): Promise<string>;
  /** `pg_ctl stop -m fast`: connections are cut, the server is gone until `start`. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server for good and removes its directory. */
  destroy(): Promise<void>;
}

function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error('running as root, but there is no OS user `postgres` to run the server as');
  return { uid: Number(uid), gid: Number(gid) };
}

export async function startControlledPostgres(): Promise<ControlledPostgres> {
  const bin = findPostgresBinDir();
  const user = serverUser();
  const root = fs.existsSync('/dev/shm') && fs.statfsSync('/dev/shm').bavail * fs.statfsSync('/dev/shm').bsize >= 1024 ** 3 ? '/dev/shm' : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(root, 'runstate-pgctl-'));
  if (user) fs.chownSync(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  const runAs = async (cmd: string, args: string[]) => {
    const [file, argv] = user
      ? [['/usr/sbin/runuser', '/sbin/runuser'].find((f) => fs.existsSync(f)) ?? 'runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]]
      : [path.join(bin, cmd), args];
    await exec(file, argv, { cwd: dir, timeout: 60_000 });
  };
  const port = await freePort();
  const onExit = () => {
    try {
      const pid = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // Not running.
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const url = (database: string, password?: string) =>
    `postgresql://postgres${password === undefined ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const start = async () => {
    const opts = [
      `-p ${port}`,
      `-k ${dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c autovacuum=off',
      '-c max_connections=200',
      '-c shared_buffers=32MB',
    ].join(' ');
    await runAs('pg_ctl', ['-D', data, '-l', path.join(dir, 'server.log'), '-o', opts, '-w', '-t', '30', 'start']);
  };
  try {
    await runAs('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
    await start();
  } catch (err) {
    onExit();
    process.off('exit', onExit);
    throw err;
  }
  let destroyed = false;
  return {
    port,
    url,
    async createDatabase() {
      const name = `faults_${Math.random().toString(16).slice(2, 10)}`;
      const admin = new Client({ connectionString: url('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return name;
    },
    stop: () => runAs('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']),
    start,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.off('exit', onExit);
      try {
        await runAs('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
      } catch {
        // Already stopped.
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One controlled server for the test file (started in `beforeAll`, destroyed in `afterAll`);
 * call at the top of the file. The answer gives the server to the tests.
 */
export function useControlledPostgres(): () => ControlledPostgres {
  let server: ControlledPostgres | undefined;
  beforeAll(async () => {
    server = await startControlledPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.destroy();
  });
  return () => {
    if (!server) throw new Error('useControlledPostgres(): the server is used outside the tests of the file that started it');
    return server;
  };
}
