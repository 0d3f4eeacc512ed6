// Authentication of /api/v1 and the console: Bearer tokens or Basic users from cluster.yaml.
// With neither configured, loopback clients may read (status) but never command over TCP: commands
// then go through the root-only local socket (top/cli/daemon.ts), or a token must be configured.
import { timingSafeEqual, createHash } from 'node:crypto';
import net from 'node:net';
import type { ApiConfig, ApiRole } from '../../src/config/types.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function same(a: string, b: string): boolean {
  // Hash first so that the comparison is constant-time whatever the lengths.
  return timingSafeEqual(digest(a), digest(b));
}

/** Any of `candidates` equals `value`; every candidate is compared (no early exit on a match). */
function anySame(candidates: readonly string[], value: string): boolean {
  let found = false;
  for (const c of candidates) found = same(c, value) || found;
  return found;
}

/**
 * Roles: `viewer` reads (status, events, metrics, the console); `operator` also commands the
 * modules (start, stop, swap, maintenance...); `admin` also reloads the configuration. A token is
 * admin (the CLI's credential); a user is what its `role` says (admin when none).
 */
export type AuthResult = { ok: true; who: string; role: ApiRole } | { ok: false; reason: string; attempted: boolean };

const RANK: Record<ApiRole, number> = { viewer: 0, operator: 1, admin: 2 };

/** `role` may do what `needs` may. */
export function roleAllows(role: ApiRole, needs: ApiRole): boolean {
  return RANK[role] >= RANK[needs];
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || (net.isIPv4(a) && a.startsWith('127.'));
}

export function credentialsConfigured(api: ApiConfig): boolean {
  return api.tokens.length > 0 || api.users.length > 0;
}

/** How to configure a credential, for the messages of refused commands. */
export function howToConfigure(api: ApiConfig): string {
  return `configure a token in cluster.yaml (api: { tokens: ["<at least 16 random characters>"] }, e.g. \`openssl rand -hex 24\`) `
    + `and send it as "Authorization: Bearer <token>", or run the command as root on the node: the croft CLI then uses the local socket ${api.socket}`;
}

/**
 * `attempted` is true when a credential was presented and was wrong (what the failed-login limiter
 * counts); a missing Authorization header is the browser's first request, not a guess.
 */
export function authenticate(api: ApiConfig, authorization: string | undefined, remoteAddress: string | undefined): AuthResult {
  if (!credentialsConfigured(api)) {
    return isLoopback(remoteAddress) ? { ok: true, who: 'loopback', role: 'viewer' }
      : { ok: false, attempted: false, reason: 'no credentials configured: only loopback clients may read' };
  }
  if (!authorization) return { ok: false, attempted: false, reason: 'missing Authorization header (Bearer token or Basic user)' };
  const sp = authorization.indexOf(' ');
  const scheme = (sp < 0 ? authorization : authorization.slice(0, sp)).toLowerCase();
  const value = sp < 0 ? '' : authorization.slice(sp + 1).trim();
  if (scheme === 'bearer') {
    return anySame(api.tokens, value) ? { ok: true, who: 'token', role: 'admin' } : { ok: false, attempted: true, reason: 'unknown token' };
  }
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const name = i < 0 ? decoded : decoded.slice(0, i);
    const password = i < 0 ? '' : decoded.slice(i + 1);
    // Compare against every user, name and password both, so that the time says nothing of which
    // names exist.
    let who: { name: string; role: ApiRole } | null = null;
    for (const u of api.users) {
      const nameOk = same(u.name, name);
      const passwordOk = same(u.password, password); // computed whatever the name: no shortcut to time
      if (nameOk && passwordOk && i > 0) who = { name: u.name, role: u.role ?? 'admin' };
    }
    return who !== null ? { ok: true, who: who.name, role: who.role } : { ok: false, attempted: true, reason: 'bad user or password' };
  }
  return { ok: false, attempted: true, reason: `unsupported authorization scheme "${scheme}"` };
}

/**
 * Failed logins per source (an IPv4 address, or the /64 of an IPv6 one: a single host has a whole
 * /64): `limit` failures in `windowMs`, then every authenticated request from that source is
 * answered 429 until the window ends (a right guess is refused too, so guessing teaches nothing).
 * The table holds at most `maxSources` entries; when full, the oldest window is forgotten, so
 * memory is bounded whatever the number of sources.
 */
export class FailedLogins {
  private readonly table = new Map<string, { since: number; failures: number }>();
  constructor(
    readonly limit = 10,
    readonly windowMs = 60_000,
    readonly maxSources = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  static source(address: string | undefined): string {
    if (!address) return '?';
    const a = address.startsWith('::ffff:') ? address.slice(7) : address;
    if (!net.isIPv6(a)) return a;
    return `${expandV6(a).slice(0, 4).join(':')}::/64`;
  }

  /** ms until `address` may try again, or 0 when it may now. */
  blockedForMs(address: string | undefined): number {
    const e = this.table.get(FailedLogins.source(address));
    if (!e) return 0;
    const left = e.since + this.windowMs - this.now();
    if (left <= 0) {
      this.table.delete(FailedLogins.source(address));
      return 0;
    }
    return e.failures >= this.limit ? left : 0;
  }

  fail(address: string | undefined): void {
    const key = FailedLogins.source(address);
    const t = this.now();
    const e = this.table.get(key);
    if (e && t - e.since < this.windowMs) {
      e.failures++;
      return;
    }
    if (e) this.table.delete(key);
    while (this.table.size >= this.maxSources) {
      // Map iteration is insertion order: the first key is the oldest window.
      const oldest = this.table.keys().next().value as string;
      this.table.delete(oldest);
    }
    this.table.set(key, { since: t, failures: 1 });
  }

  size(): number {
    return this.table.size;
  }
}

function expandV6(a: string): string[] {
  const [head = '', tail] = a.split('::', 2);
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array(Math.max(0, 8 - h.length - t.length)).fill('0');
  return [...h, ...fill, ...t].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}
