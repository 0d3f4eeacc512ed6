// The `vip` key of farm and mirror modules: one address, a list of them (IPv4 and IPv6 mixed), or
// 'none'; its schema, its reading, and the checks across keys and files that the schema cannot do.
import { isIP } from 'node:net';
import type { ConfigProblem } from './problems.js';
import type { JsonSchema } from './schema-parts.js';
import type { DataPath, Source } from './source.js';

/** At most this many VIPs per module (each is an address, a responder entry and an nft element). */
export const vipsMax = 16;

/**
 * `vip` of a farm or mirror module: one address, a list of them (IPv4 and IPv6 mixed), or 'none'.
 * The `check` keyword applies to a string only, `items` to a list only.
 */
export function vipSchema(expect: string): JsonSchema {
  return {
    type: ['string', 'array'],
    check: 'ip-or-none',
    minItems: 1,
    maxItems: vipsMax,
    uniqueItems: true,
    items: { type: 'string', check: 'ip', expect: 'an IPv4 or IPv6 address' },
    expect,
  };
}

/** The VIPs of a `vip` value as written (one, a list, 'none': []); strings only, in order. */
export function vipsOf(v: unknown): string[] {
  if (v === 'none') return [];
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** An address in its canonical text (IPv6 lower-case and compressed, as the kernel prints it). */
export function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}

/**
 * Checks of the addresses of `vip` (farm and mirror): none is a node's address, none is listed
 * twice in another spelling (fd00::1 and FD00:0::1).
 */
export function checkVips(source: Source, value: unknown, addresses: Map<string, string>, why: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, { i: number; as: string }>();
  const listed = Array.isArray(value);
  (listed ? (value as unknown[]) : [value]).forEach((vip, i) => {
    if (typeof vip !== 'string' || isIP(vip) === 0) return;
    const at: DataPath = listed ? ['vip', i] : ['vip'];
    const canonical = canonicalIp(vip);
    const owner = addresses.get(vip.toLowerCase()) ?? addresses.get(canonical);
    if (owner !== undefined) problems.push(source.problem(at, `${vip} is the address of ${owner}; expected an address that no node has (${why})`, 'value'));
    const earlier = seen.get(canonical);
    // The same text twice is the schema's uniqueItems' to report.
    if (earlier === undefined) seen.set(canonical, { i, as: vip });
    else if (earlier.as !== vip) problems.push(source.problem(at, `${vip} is item ${earlier.i} (${earlier.as}) again; expected each VIP once`, 'value'));
  });
  return problems;
}
