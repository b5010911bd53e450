// `runstate webhooks …`: subscribe a URL to run events, list and delete subscriptions, and
// read the delivery log (docs/api.md, "Webhooks").
import { Option, type Command } from 'commander';
import { WEBHOOK_EVENTS } from '../store/outbox.js';
import { UsageError, call, type Target } from './client.js';

interface WebhookView {
  webhook_id: string;
  site_id: string | null;
  url: string;
  events: string[];
  created_by: string;
  created_at: string;
}

interface DeliveryView {
  delivery_id: string;
  event: string;
  run_id: string;
  seq: number;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  last_error: string | null;
  created_at: string;
}

export interface WebhookCommandsDeps {
  target: () => Target;
  print: (text: string) => void;
  table: (rows: string[][]) => string;
  env: NodeJS.ProcessEnv;
}

/** Adds `webhooks add|list|delete|deliveries` to the program. */
export function addWebhookCommands(program: Command, { target, print, table, env }: WebhookCommandsDeps): void {
  const webhooks = program.command('webhooks').description('subscribe URLs to run events (run_completed, run_failed, …) and read their deliveries');
  const json = () => new Option('--json', 'print the JSON the API answers');

  webhooks
    .command('add <url>')
    .description('subscribe a URL; prints the new webhook id')
    .requiredOption('--events <names>', `comma-separated, among ${WEBHOOK_EVENTS.join(', ')}`)
    .option('--secret <secret>', 'signs each body (X-Runstate-Signature), 16–256 characters [RUNSTATE_WEBHOOK_SECRET]')
    .option('--site <site_id>', 'only runs of this site (required for tokens scoped to sites)')
    .addOption(json())
    .action(async (url: string, flags: { events: string; secret?: string; site?: string; json?: boolean }) => {
      const events = flags.events.split(',').map((e) => e.trim()).filter((e) => e !== '');
      const unknown = events.filter((e) => !(WEBHOOK_EVENTS as readonly string[]).includes(e));
      if (events.length === 0 || unknown.length > 0) {
        throw new UsageError(`Expected \`--events\` to list names among ${WEBHOOK_EVENTS.join(', ')}, got ${JSON.stringify(flags.events)}.`);
      }
      const secret = flags.secret ?? env.RUNSTATE_WEBHOOK_SECRET;
      if (secret === undefined || secret === '') throw new UsageError('Expected `--secret` (or RUNSTATE_WEBHOOK_SECRET): the key the receiver checks signatures with.');
      const body = { url, events, secret, ...(flags.site !== undefined ? { site_id: flags.site } : {}) };
      const { data } = await call<WebhookView>(target(), 'POST', '/webhooks', body);
      print(flags.json ? JSON.stringify(data, null, 2) : data.webhook_id);
    });

  webhooks
    .command('list')
    .description('the subscriptions this token may see')
    .option('--site <site_id>', 'only this site')
    .addOption(json())
    .action(async (flags: { site?: string; json?: boolean }) => {
      const query = flags.site !== undefined ? `?site_id=${encodeURIComponent(flags.site)}` : '';
      const { data } = await call<WebhookView[]>(target(), 'GET', `/webhooks${query}`);
      if (flags.json) return print(JSON.stringify(data, null, 2));
      if (data.length === 0) return print('no webhooks');
      print(table([['WEBHOOK', 'SITE', 'EVENTS', 'URL', 'CREATED'], ...data.map((w) => [w.webhook_id, w.site_id ?? '*', w.events.join(','), w.url, w.created_at])]));
    });

  webhooks
    .command('delete <webhook_id>')
    .description('delete a subscription with its pending deliveries and log')
    .action(async (id: string) => {
      await call(target(), 'DELETE', `/webhooks/${encodeURIComponent(id)}`);
      print(`${id}: deleted`);
    });

  webhooks
    .command('deliveries <webhook_id>')
    .description('the delivery log, newest first')
    .option('--limit <n>', '1–500 [100]')
    .addOption(json())
    .action(async (id: string, flags: { limit?: string; json?: boolean }) => {
      if (flags.limit !== undefined && !/^\d+$/.test(flags.limit)) throw new UsageError(`Expected \`--limit\` to be a whole number, got ${JSON.stringify(flags.limit)}.`);
      const query = flags.limit !== undefined ? `?limit=${flags.limit}` : '';
      const { data } = await call<DeliveryView[]>(target(), 'GET', `/webhooks/${encodeURIComponent(id)}/deliveries${query}`);
      if (flags.json) return print(JSON.stringify(data, null, 2));
      if (data.length === 0) return print('no deliveries');
      print(
        table([
          ['DELIVERY', 'EVENT', 'RUN', 'SEQ', 'STATUS', 'ATTEMPTS', 'NEXT', 'LAST ERROR'],
          ...data.map((d) => [d.delivery_id, d.event, d.run_id, String(d.seq), d.status, String(d.attempts), d.next_attempt_at ?? '', d.last_error ?? '']),
        ]),
      );
    });
}
