// http checker: healthy when GET url answers with one of expectStatus (any 2xx when empty) within
// the timeout. Redirects are not followed: a 302 to a login page is not the service being healthy
// unless the user lists 302.
// node:http, not fetch(): the first fetch() loads undici, its WebAssembly parser and web streams
// into the daemon, ~30 MB of RSS for a GET every interval (measured: 50 MB after 50 GETs with
// http.get, 78 MB with fetch; bench/farm/REPORT.md, idle).
import http from 'node:http';
import https from 'node:https';
import type { Probe } from './probe.js';
import { reasonOf } from './probe.js';

export function httpProbe(cfg: { url: string; expectStatus: number[] }): Probe {
  return (signal) =>
    new Promise((resolve) => {
      const settle = (r: { ok: boolean; detail: string }) => resolve(r);
      const fail = (err: unknown) => settle({ ok: false, detail: signal.aborted ? `timeout on ${cfg.url}` : `${reasonOf(err)} on ${cfg.url}` });
      let url: URL;
      try {
        url = new URL(cfg.url);
      } catch (err) {
        return fail(err);
      }
      const client = url.protocol === 'https:' ? https : http;
      try {
        const req = client.get(url, { signal, headers: { 'user-agent': 'croft-checker' } }, (res) => {
          const status = res.statusCode ?? 0;
          // Free the connection without reading a body we do not need.
          res.destroy();
          const ok = cfg.expectStatus.length > 0 ? cfg.expectStatus.includes(status) : status >= 200 && status < 300;
          settle({ ok, detail: `HTTP ${status}` });
        });
        req.on('error', fail);
      } catch (err) {
        fail(err); // an unsupported protocol throws at once
      }
    });
}
