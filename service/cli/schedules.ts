// `runstate schedules …`: start runs of a pipeline on a cron schedule; list, pause, resume and
// delete schedules (docs/api.md, "Schedules").
import { Option, type Command } from 'commander';
import { call, type Target } from './client.js';

interface FireView {
  fire_at: string;
  state: string;
  run_id: string | null;
  run_status: string | null;
}

interface ScheduleView {
  schedule_id: string;
  site_id: string;
  pipeline: string;
  cron: string;
  timezone: string;
  overlap: string;
  status: string;
  next_run_at: string | null;
  last_runs: FireView[];
}

export interface ScheduleCommandsDeps {
  target: () => Target;
  print: (text: string) => void;
  table: (rows: string[][]) => string;
  /** `--option key=value`, as `runstate start` reads it. */
  parseOption: (pair: string, previous?: Record<string, unknown>) => Record<string, unknown>;
}

/** The last fire, as one cell: `started run_… (completed)`, `skipped`. */
function lastFire(s: ScheduleView): string {
  const f = s.last_runs[0];
  if (!f) return '';
  return [f.state, f.run_id ?? '', f.run_status ? `(${f.run_status})` : ''].filter((x) => x !== '').join(' ');
}

/** Adds `schedules list|create|pause|resume|delete` to the program. */
export function addScheduleCommands(program: Command, { target, print, table, parseOption }: ScheduleCommandsDeps): void {
  const schedules = program.command('schedules').description('start runs of a pipeline on a cron schedule');
  const json = () => new Option('--json', 'print the JSON the API answers');

  schedules
    .command('create <pipeline> <cron>')
    .description('schedule runs of a pipeline: cron has 5 fields, or 6 with seconds first (quote it); prints the new schedule id')
    .requiredOption('--site <site_id>', 'the site the runs belong to')
    .option('--option <key=value>', 'a pipeline option, repeatable; the value as JSON when it is JSON', parseOption)
    .option('--timezone <name>', 'the IANA time zone the cron fields are read in [UTC]')
    .addOption(new Option('--overlap <mode>', 'skip: no run while the previous one is unfinished; allow: start anyway [skip]').choices(['skip', 'allow']))
    .addOption(json())
    .action(async (pipeline: string, cron: string, flags: { site: string; option?: Record<string, unknown>; timezone?: string; overlap?: string; json?: boolean }) => {
      const body = {
        site_id: flags.site,
        pipeline,
        cron,
        ...(flags.option !== undefined ? { options: flags.option } : {}),
        ...(flags.timezone !== undefined ? { timezone: flags.timezone } : {}),
        ...(flags.overlap !== undefined ? { overlap: flags.overlap } : {}),
      };
      const { data } = await call<ScheduleView>(target(), 'POST', '/schedules', body);
      print(flags.json ? JSON.stringify(data, null, 2) : `${data.schedule_id}  next run ${data.next_run_at ?? 'never'}`);
    });

  schedules
    .command('list')
    .description('the schedules this token may see, with their next fire time and last run')
    .option('--site <site_id>', 'only this site')
    .addOption(json())
    .action(async (flags: { site?: string; json?: boolean }) => {
      const query = flags.site !== undefined ? `?site_id=${encodeURIComponent(flags.site)}` : '';
      const { data } = await call<ScheduleView[]>(target(), 'GET', `/schedules${query}`);
      if (flags.json) return print(JSON.stringify(data, null, 2));
      if (data.length === 0) return print('no schedules');
      print(
        table([
          ['SCHEDULE', 'SITE', 'PIPELINE', 'CRON', 'TIMEZONE', 'OVERLAP', 'STATUS', 'NEXT RUN', 'LAST'],
          ...data.map((s) => [s.schedule_id, s.site_id, s.pipeline, s.cron, s.timezone, s.overlap, s.status, s.next_run_at ?? '', lastFire(s)]),
        ]),
      );
    });

  for (const command of ['pause', 'resume'] as const) {
    schedules
      .command(`${command} <schedule_id>`)
      .description(command === 'pause' ? 'start no more runs until resumed' : 'start runs again from the next fire time (the ones that fell while paused are not caught up)')
      .action(async (id: string) => {
        const res = await call<ScheduleView>(target(), 'POST', `/schedules/${encodeURIComponent(id)}/${command}`);
        print(`${res.data.schedule_id}: ${res.data.status}${res.accepted === false ? ` (${command}: nothing to do)` : ''}`);
      });
  }

  schedules
    .command('delete <schedule_id>')
    .description('delete a schedule (its runs stay)')
    .action(async (id: string) => {
      await call(target(), 'DELETE', `/schedules/${encodeURIComponent(id)}`);
      print(`${id}: deleted`);
    });
}
