// The `runstate` command (bin/runstate.mjs): serve, and talk to a service over its API.
// Bad arguments exit 2 with a message saying which; a refusal by the service exits 1 with
// the service's own message.
import { Command, CommanderError, Option } from 'commander';
import { RUN_STATES } from '../../machines/index.js';
import type { RunView } from '../engine/view.js';
import type { PipelineListing } from '../pipelines/loader.js';
import { ServiceError, UsageError, call, resolveTarget, type Target, type TargetFlags } from './client.js';
import { addScheduleCommands } from './schedules.js';
import { tail } from './tail.js';
import { addWebhookCommands } from './webhooks.js';

/** The run commands, as the CLI spells them, with the API command each sends (docs/api.md, "Commands"). */
const COMMANDS = [
  ['pause', 'pause', 'pause a run: items in flight finish, nothing new starts'],
  ['resume', 'resume', 'resume a paused run'],
  ['cancel', 'cancel', 'cancel a run: items in flight are aborted'],
  ['retry', 'retry', 'resume a failed run where it stopped'],
  ['close', 'close', 'hide a completed or cancelled run'],
  ['approve', 'approve', 'start the stage a run awaits approval for'],
  ['reject', 'reject', 'cancel a run that awaits approval'],
  ['retry-failed', 'retry_failed', 'give the items of a completed or failed run that failed new attempts'],
] as const;

interface Io {
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

/** `k=v`: `v` as JSON when it is JSON (`7`, `true`, `[1,2]`, `"7"`), else the text as it is. */
export function parseOption(pair: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new UsageError(`Expected \`--option\` as key=value, got ${JSON.stringify(pair)}.`);
  const key = pair.slice(0, eq).trim();
  const raw = pair.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // plain text
  }
  return { ...previous, [key]: value };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length))).join('  ').trimEnd()).join('\n');
}

function describeOptions(schema: Record<string, unknown> | null): string[] {
  const props = (schema?.properties ?? {}) as Record<string, { type?: unknown; default?: unknown; description?: string; enum?: unknown[]; oneOf?: { type?: unknown }[] }>;
  const required = new Set((schema?.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([name, p]) => {
    const type = p.enum ? p.enum.map((v) => JSON.stringify(v)).join('|') : p.type !== undefined ? String(p.type) : (p.oneOf ?? []).map((b) => String(b.type)).join('|');
    const dflt = p.default !== undefined ? ` = ${JSON.stringify(p.default)}` : required.has(name) ? ' (required)' : '';
    return `    ${name}: ${type || 'any'}${dflt}${p.description ? `  ${p.description}` : ''}`;
  });
}

function runRow(r: RunView): string[] {
  const stage = r.current_stage !== null ? r.stages[r.current_stage - 1] : undefined;
  const progress = stage ? `${r.current_stage}/${r.stages.length} ${stage.name} ${stage.processed_items}/${stage.total_items ?? '?'}` : '';
  return [r.run_id, r.site_id, r.pipeline, r.status + (r.closed_at ? ' (closed)' : ''), progress, r.created_at];
}

export function buildProgram(io: Io, onServing: () => void = () => undefined): Command {
  const program = new Command('runstate')
    .description('Runs multi-stage batch pipelines as XState actors, durably, and shows them live.')
    .option('--url <url>', 'the service [RUNSTATE_URL, else http://$HOST:$PORT, http://127.0.0.1:3000]')
    .option('--token <token>', "a token [RUNSTATE_TOKEN, else the admin token in the data directory]")
    .option('--data <dir>', "a local service's data directory, for its admin token [RUNSTATE_DATA, ./data]")
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out.write(s), writeErr: (s) => io.err.write(s) });

  const target = (): Target => resolveTarget(program.opts<TargetFlags>(), io.env);
  const json = new Option('--json', 'print the JSON the API answers');
  const print = (text: string): void => void io.out.write(`${text}\n`);

  program
    .command('serve')
    .description('run the service (what `npm start` runs, without building the dashboard)')
    .option('--port <port>', 'PORT')
    .option('--host <host>', 'HOST')
    .option('--pipelines <paths>', 'RUNSTATE_PIPELINES: pipeline files and directories, comma-separated')
    .action(async (flags: { port?: string; host?: string; pipelines?: string }) => {
      const data = program.opts<TargetFlags>().data;
      const env = { ...io.env };
      if (flags.port !== undefined) env.PORT = flags.port;
      if (flags.host !== undefined) env.HOST = flags.host;
      if (flags.pipelines !== undefined) env.RUNSTATE_PIPELINES = flags.pipelines;
      if (data !== undefined) env.RUNSTATE_DATA = data;
      const { main } = await import('../server.js');
      await main(env);
      onServing();
    });

  program
    .command('pipelines')
    .description('list the pipelines, their stages and options')
    .addOption(json)
    .action(async (flags: { json?: boolean }) => {
      const { data } = await call<PipelineListing[]>(target(), 'GET', '/pipelines');
      if (flags.json) return print(JSON.stringify(data, null, 2));
      for (const p of data) {
        print(`${p.name}${p.description ? `  ${p.description}` : ''}`);
        for (const s of p.stages) print(`  ${s.number}. ${s.name} (${s.key})${s.queue ? ` on queue ${s.queue}` : ''}`);
        const options = describeOptions(p.options_schema);
        if (options.length > 0) print(`  options:\n${options.join('\n')}`);
      }
    });

  program
    .command('start <pipeline>')
    .description('start a run; prints its id')
    .requiredOption('--site <site_id>', 'the site the run belongs to')
    .option('--option <key=value>', 'a pipeline option, repeatable; the value as JSON when it is JSON', parseOption)
    .option('--trigger <trigger>', 'becomes the end of the run id [manual]')
    .option('--account <account_id>', 'admin token only: the account the run belongs to')
    .option('--tail', 'then follow it, as `runstate tail`')
    .addOption(json)
    .action(async (pipeline: string, flags: { site: string; option?: Record<string, unknown>; trigger?: string; account?: string; tail?: boolean; json?: boolean }) => {
      const t = target();
      const body = {
        site_id: flags.site,
        pipeline,
        ...(flags.option !== undefined ? { options: flags.option } : {}),
        ...(flags.trigger !== undefined ? { trigger: flags.trigger } : {}),
        ...(flags.account !== undefined ? { account_id: flags.account } : {}),
      };
      const { data } = await call<RunView>(t, 'POST', '/runs', body);
      print(flags.json ? JSON.stringify(data, null, 2) : data.run_id);
      if (flags.tail) await follow(t, data.run_id);
    });

  program
    .command('runs')
    .description('list runs, newest first')
    .option('--site <site_id>', 'only this site')
    .addOption(new Option('--status <status>', 'only runs in this state').choices(RUN_STATES))
    .option('--open', 'only runs not closed')
    .option('--limit <n>', '1–500 [100]')
    .addOption(json)
    .action(async (flags: { site?: string; status?: string; open?: boolean; limit?: string; json?: boolean }) => {
      if (flags.limit !== undefined && !/^\d+$/.test(flags.limit)) throw new UsageError(`Expected \`--limit\` to be a whole number, got ${JSON.stringify(flags.limit)}.`);
      const query = new URLSearchParams();
      if (flags.site !== undefined) query.set('site_id', flags.site);
      if (flags.status !== undefined) query.set('status', flags.status);
      if (flags.open) query.set('open', 'true');
      if (flags.limit !== undefined) query.set('limit', flags.limit);
      const { data } = await call<RunView[]>(target(), 'GET', `/runs${query.size > 0 ? `?${query}` : ''}`);
      if (flags.json) return print(JSON.stringify(data, null, 2));
      if (data.length === 0) return print('no runs');
      print(table([['RUN', 'SITE', 'PIPELINE', 'STATUS', 'STAGE', 'CREATED'], ...data.map(runRow)]));
    });

  program
    .command('tail <run_id>')
    .description('follow a run live until it finishes: a bar per stage and the items in flight (plain lines when not a terminal)')
    .action(async (runId: string) => follow(target(), runId));

  for (const [name, command, description] of COMMANDS) {
    program
      .command(`${name} <run_id>`)
      .description(description)
      .option('--reason <text>', 'recorded with the command event')
      .action(async (runId: string, flags: { reason?: string }) => {
        const res = await call<RunView>(target(), 'POST', `/runs/${encodeURIComponent(runId)}/${command}`, flags.reason !== undefined ? { reason: flags.reason } : {});
        print(`${res.data.run_id}: ${res.data.status}${res.accepted === false ? ` (${name}: nothing to do)` : ''}`);
      });
  }

  addWebhookCommands(program, { target, print, table, env: io.env });
  addScheduleCommands(program, { target, print, table, parseOption });

  async function follow(t: Target, runId: string): Promise<void> {
    const status = await tail(t, runId, { out: io.out, err: io.err });
    if (status !== 'completed') process.exitCode = 1;
  }

  return program;
}

/**
 * Runs the command line; answers the exit code, or `'serving'` once `serve` listens (the
 * service then exits on its signals).
 */
export async function run(argv: readonly string[], io: Io = { out: process.stdout, err: process.stderr, env: process.env }): Promise<number | 'serving'> {
  let serving = false;
  const program = buildProgram(io, () => (serving = true));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    if (serving) return 'serving';
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; everything else commander refuses is a bad argument.
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : 2;
    }
    if (err instanceof UsageError || err instanceof ServiceError) {
      const code = err instanceof ServiceError && err.code ? ` (${err.code})` : '';
      io.err.write(`runstate: ${err.message}${code}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
