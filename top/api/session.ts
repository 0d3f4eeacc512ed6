// The web console's sessions: POST /api/v1/login with a user's name and password (or a token)
// answers a cookie that stands for that credential, so that the browser never keeps the password.
//
// - The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page makes the
//   browser send it) and Secure under TLS; it holds 32 random bytes; the table keys them by their
//   SHA-256, so a lookup's time says nothing of a stored id.
// - A session does not keep a role: each request resolves it against the configuration the API
//   was built with (a user removed or a token withdrawn by a restart ends its sessions).
// - Bounded: at most `max` sessions (the oldest goes first), each for `ttlMs` from its login.
// - A command authenticated by the cookie must carry an Origin (app.ts): with SameSite=Strict a
//   foreign page cannot send it anyway, this holds even for a browser that ignores SameSite.
import { createHash, randomBytes } from 'node:crypto';
import type { ApiConfig, ApiRole } from '../../src/config/types.js';

export const SESSION_COOKIE = 'croft_session';

type Holder = { kind: 'user'; name: string } | { kind: 'token'; digest: string };

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The value of cookie `name` in a Cookie header, or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export class Sessions {
  readonly #table = new Map<string, { holder: Holder; expiresAtMs: number }>();

  constructor(
    private readonly api: ApiConfig,
    readonly ttlMs = 8 * 3600_000,
    readonly max = 1024,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session for a user (by name) or a token; returns the cookie's value. */
  open(holder: { user: string } | { token: string }): string {
    const id = randomBytes(32).toString('base64url');
    while (this.#table.size >= this.max) this.#table.delete(this.#table.keys().next().value as string);
    const h: Holder = 'user' in holder ? { kind: 'user', name: holder.user } : { kind: 'token', digest: sha(holder.token) };
    this.#table.set(sha(id), { holder: h, expiresAtMs: this.now() + this.ttlMs });
    return id;
  }

  close(id: string | null): void {
    if (id) this.#table.delete(sha(id));
  }

  /** Who a cookie's session stands for, with the role the configuration gives now; null when none. */
  resolve(id: string | null): { who: string; role: ApiRole } | null {
    if (!id || id.length > 100) return null;
    const key = sha(id);
    const s = this.#table.get(key);
    if (!s) return null;
    if (s.expiresAtMs <= this.now()) {
      this.#table.delete(key);
      return null;
    }
    if (s.holder.kind === 'user') {
      const name = s.holder.name;
      const u = this.api.users.find((x) => x.name === name);
      return u ? { who: u.name, role: u.role ?? 'admin' } : null;
    }
    const digest = s.holder.digest;
    return this.api.tokens.some((t) => sha(t) === digest) ? { who: 'token', role: 'admin' } : null;
  }

  size(): number {
    return this.#table.size;
  }

  /** The Set-Cookie header of a new session (or, with id null, of its end). */
  static setCookie(id: string | null, secure: boolean, ttlMs: number): string {
    const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])];
    return id === null ? [`${SESSION_COOKIE}=`, 'Max-Age=0', ...attrs].join('; ')
      : [`${SESSION_COOKIE}=${id}`, `Max-Age=${Math.floor(ttlMs / 1000)}`, ...attrs].join('; ');
  }
}
