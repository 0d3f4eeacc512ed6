// http checker: healthy when GET url answers with one of expectStatus (any 2xx when empty) within
// the timeout. Redirects are not followed: a 302 to a login page is not the service being healthy
// unless the user lists 302.
// The probe speaks the little HTTP/1.1 it needs itself, as HAProxy's and keepalived's checks do:
// one GET with `Connection: close` over node:net (node:tls for https, the certificate verified as
// by any client), the status line read, the connection closed without reading the body. A probe
// runs every interval on every node for the daemon's whole life: node:http's client (agent,
// request and response streams, llhttp's parser) cost about twice the CPU per probe, and fetch()
// loads undici, its WebAssembly parser and web streams into the daemon, ~30 MB of RSS
// (bench/farm/REPORT.md, idle).
import net from 'node:net';
import tls from 'node:tls';
import type { Probe, ProbeResult } from './probe.js';
import { reasonOf } from './probe.js';

/** A status line longer than this is not an HTTP server's. */
const MAX_STATUS_LINE = 4096;

interface Target {
  secure: boolean;
  /** For connect: an IPv6 literal without its brackets. */
  host: string;
  port: number;
  request: string;
}

function targetOf(url: string): Target {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`protocol "${u.protocol}" not supported (http: or https:)`);
  const secure = u.protocol === 'https:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port);
  // URL has already percent-encoded the path and query: no CR, LF or space can reach the request line.
  const request = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: croft-checker\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
  return { secure, host, port, request };
}

/** The status code of a status line (`HTTP/1.1 200 OK`), or null. */
function statusOf(line: string): number | null {
  const m = /^HTTP\/1\.[01] ([1-9]\d\d)(?: |$)/.exec(line);
  return m ? Number(m[1]) : null;
}

export function httpProbe(cfg: { url: string; expectStatus: number[] }): Probe {
  let target: Target | Error;
  try {
    target = targetOf(cfg.url);
  } catch (err) {
    target = err instanceof Error ? err : new Error(String(err));
  }
  return (signal) =>
    new Promise((resolve) => {
      let socket: net.Socket | null = null;
      let settled = false;
      const settle = (r: ProbeResult) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        socket?.destroy();
        resolve(r);
      };
      const fail = (err: unknown) => settle({ ok: false, detail: signal.aborted ? `timeout on ${cfg.url}` : `${reasonOf(err)} on ${cfg.url}` });
      const onAbort = () => fail(signal.reason);
      if (target instanceof Error) return fail(target);
      if (signal.aborted) return fail(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      const t = target;
      const s = t.secure
        ? tls.connect({ host: t.host, port: t.port, servername: net.isIP(t.host) ? undefined : t.host, ALPNProtocols: ['http/1.1'] })
        : net.connect({ host: t.host, port: t.port });
      socket = s;
      s.once(t.secure ? 'secureConnect' : 'connect', () => s.write(t.request));
      s.setEncoding('latin1');
      let head = '';
      s.on('data', (chunk: string) => {
        head += chunk;
        const eol = head.indexOf('\n');
        if (eol < 0) {
          if (head.length > MAX_STATUS_LINE) fail(new Error(`no HTTP status line in the first ${MAX_STATUS_LINE} bytes`));
          return;
        }
        const line = head.slice(0, eol).replace(/\r$/, '');
        const status = statusOf(line);
        if (status === null) return fail(new Error(`not an HTTP answer: ${JSON.stringify(line.slice(0, 60))}`));
        const ok = cfg.expectStatus.length > 0 ? cfg.expectStatus.includes(status) : status >= 200 && status < 300;
        settle({ ok, detail: `HTTP ${status}` });
      });
      s.on('error', fail);
      s.on('close', () => fail(new Error('connection closed before the status line')));
    });
}
