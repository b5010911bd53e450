// The `runstate` command run in this process against a service, with its output captured.
import { run } from '../../../service/cli/main.js';
import { ADMIN } from '../../helpers/app.js';

export interface CliResult {
  code: number | 'serving';
  out: string;
  err: string;
}

/** Runs `runstate --url <url> --token <admin> …args` and returns its exit code and what it printed. */
export async function cliAt(url: string, ...args: string[]): Promise<CliResult> {
  let out = '';
  let err = '';
  const io = {
    out: { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream,
    err: { write: (s: string) => ((err += s), true) } as unknown as NodeJS.WriteStream,
    env: {},
  };
  const code = await run(['--url', url, '--token', ADMIN, ...args], io);
  return { code, out, err };
}
