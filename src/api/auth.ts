// Authentication of /api/v1 and the console: Bearer tokens or Basic users from cluster.yaml.
// With neither configured, only loopback clients are let in (a fresh install stays usable locally).
import { timingSafeEqual, createHash } from 'node:crypto';
import type { ApiConfig } from '../config/types.js';

function same(a: string, b: string): boolean {
  // Hash first so that the comparison is constant-time whatever the lengths.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export type AuthResult = { ok: true; who: string } | { ok: false; reason: string };

export function authenticate(api: ApiConfig, authorization: string | undefined, remoteAddress: string | undefined): AuthResult {
  if (api.tokens.length === 0 && api.users.length === 0) {
    const loopback = remoteAddress === '127.0.0.1' || remoteAddress === '::1' || remoteAddress === '::ffff:127.0.0.1';
    return loopback ? { ok: true, who: 'loopback' } : { ok: false, reason: 'no credentials configured: only loopback clients are accepted' };
  }
  if (!authorization) return { ok: false, reason: 'missing Authorization header (Bearer token or Basic user)' };
  const [scheme, value = ''] = authorization.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer') {
    return api.tokens.some((t) => same(t, value)) ? { ok: true, who: 'token' } : { ok: false, reason: 'unknown token' };
  }
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const name = decoded.slice(0, i);
    const password = decoded.slice(i + 1);
    const user = api.users.find((u) => u.name === name);
    return user && i > 0 && same(user.password, password) ? { ok: true, who: name } : { ok: false, reason: 'bad user or password' };
  }
  return { ok: false, reason: `unsupported authorization scheme "${scheme}"` };
}
