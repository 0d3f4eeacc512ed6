// http checker: healthy when GET url answers with one of expectStatus (any 2xx when empty) within
// the timeout. Redirects are not followed: a 302 to a login page is not the service being healthy
// unless the user lists 302.
import type { Probe } from './probe.js';
import { reasonOf } from './probe.js';

export function httpProbe(cfg: { url: string; expectStatus: number[] }): Probe {
  return async (signal) => {
    try {
      const res = await fetch(cfg.url, { signal, redirect: 'manual', headers: { 'user-agent': 'croft-checker' } });
      // Free the connection without reading a body we do not need.
      await res.body?.cancel().catch(() => {});
      const ok = cfg.expectStatus.length > 0 ? cfg.expectStatus.includes(res.status) : res.status >= 200 && res.status < 300;
      return { ok, detail: `HTTP ${res.status}` };
    } catch (err) {
      if (signal.aborted) return { ok: false, detail: `timeout on ${cfg.url}` };
      const cause = (err as { cause?: unknown }).cause;
      return { ok: false, detail: `${reasonOf(cause ?? err)} on ${cfg.url}` };
    }
  };
}
