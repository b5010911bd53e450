// Which webhook URLs the service may call: http(s) only, and, unless private addresses are
// allowed, no host that resolves to a loopback, link-local, private or otherwise internal
// address, so a token holder cannot make the service call its own network. Checked at creation
// and again at every connection (the `lookup` of the request), so DNS that changes in between
// cannot slip an internal address through.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
  ['64:ff9b::', 96], // NAT64 of any IPv4
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/** Whether an address is one a webhook may not reach (IPv4-mapped IPv6 judged as its IPv4). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined) return blocked.check(mapped, 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export class WebhookUrlError extends Error {
  readonly code = 'INVALID_WEBHOOK_URL';
}

export type Resolve = (host: string) => Promise<string[]>;

/** Every address the host name resolves to. */
export const resolveHost: Resolve = (host) =>
  new Promise((resolve, reject) => {
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses: LookupAddress[]) => {
      if (err) reject(err);
      else resolve(addresses.map((a) => a.address));
    });
  });

/**
 * Parses and checks a webhook URL; throws `WebhookUrlError` saying why it is refused. With
 * `allowPrivate`, only the scheme and shape are checked.
 */
export async function checkWebhookUrl(raw: string, opts: { allowPrivate: boolean; resolve?: Resolve }): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookUrlError(`Expected \`url\` to be an absolute http(s) URL, got ${JSON.stringify(raw)}.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WebhookUrlError(`Expected \`url\` to be http or https, got ${JSON.stringify(url.protocol.slice(0, -1))}.`);
  }
  if (url.username !== '' || url.password !== '') throw new WebhookUrlError('Expected `url` without credentials; sign with `secret` instead.');
  if (opts.allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = isIP(host) !== 0 ? [host] : await (opts.resolve ?? resolveHost)(host);
  } catch {
    throw new WebhookUrlError(`The host of \`url\` (${host}) does not resolve.`);
  }
  const bad = addresses.find(isPrivateAddress);
  if (addresses.length === 0 || bad !== undefined) {
    throw new WebhookUrlError(
      `The host of \`url\` (${host}) is a loopback, link-local or private address${bad !== undefined && bad !== host ? ` (${bad})` : ''}; set RUNSTATE_WEBHOOKS_ALLOW_PRIVATE=1 to allow it.`,
    );
  }
  return url;
}

/** A `lookup` for http.request that refuses to connect to a private address. */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true, verbatim: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    if (bad !== undefined || addresses.length === 0) {
      return callback(new WebhookUrlError(`${hostname} resolves to a private address (${bad?.address ?? 'none'})`), '', 0);
    }
    if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    const first = addresses[0]!;
    return callback(null, first.address, first.family);
  });
};
