// The CLI's client of the local daemon's API: address and credentials from the config dir.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { loadConfig } from '../../src/config/load.js';
import { CroftError } from '../../src/errors.js';
import { readBody } from '../http-body.js';

export const defaultConfigDir = process.env.CROFT_CONFIG ?? '/etc/croft';

export interface ApiTarget {
  url: URL;
  /** When set, requests go to this unix socket (the daemon's local API) instead of url. */
  socketPath?: string;
  authorization?: string;
  /** Trusted CAs for https (default: the system's). */
  ca?: (string | Buffer)[];
}

/**
 * Where and how the CLI reaches the daemon. The local socket first (root-only: no credential
 * crosses anything) unless --api names another address. Over TCP a credential is sent only to
 * loopback or over https (the certificate checked against api.tls.cert, else the system's CAs):
 * sent in clear to another address it could be read on the way and replayed.
 */
export function targetFromConfig(configDir: string, apiOverride?: string, tokenOverride?: string): ApiTarget {
  const config = loadConfig(configDir);
  const api = config.cluster.api;
  // The local socket needs no credentials and works whatever the API's address; prefer it.
  if (!apiOverride && socketUsable(api.socket)) return { url: new URL('http://localhost'), socketPath: api.socket };
  // A daemon listening on every address is reached on loopback.
  const host = api.host === '0.0.0.0' || api.host === '::' ? '127.0.0.1' : api.host;
  let url: URL;
  try {
    url = new URL(apiOverride ?? `${api.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${api.port}`);
  } catch {
    throw new CroftError('CROFT_ERR_USAGE', `--api ${apiOverride}: not a URL (e.g. https://10.0.0.1:9450)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CroftError('CROFT_ERR_USAGE', `--api ${apiOverride}: the API is reached over http or https, not ${url.protocol}`);
  }
  const token = tokenOverride ?? api.tokens[0];
  const user = api.users[0];
  const authorization = token ? `Bearer ${token}`
    : user ? `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}` : undefined;
  // The configured certificate (self-signed, or a chain ending at a private CA) is trusted, and so
  // are the system's CAs (a certificate from a public CA): never an unverified connection.
  return { url, authorization, ca: api.tls ? [...tls.rootCertificates, fs.readFileSync(api.tls.cert, 'utf8')] : undefined };
}

/** True for 127.0.0.0/8, ::1 and localhost: a request that never leaves the machine. */
export function loopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

/** Refuses to send a credential in clear beyond loopback (throws CROFT_ERR_API_INSECURE). */
export function checkTransport(target: ApiTarget): void {
  if (target.socketPath || !target.authorization) return;
  if (target.url.protocol === 'https:' || loopbackHost(target.url.hostname)) return;
  throw new CroftError('CROFT_ERR_API_INSECURE', `refusing to send the API credential in clear to ${target.url.origin}: `
    + 'over plain http anyone on the path can read it and reuse it. Use https: configure api.tls (cert and key) in that node\'s '
    + `cluster.yaml and call --api https://${target.url.host}, run the command on that node itself (as root it uses the local socket), `
    + 'or reach it through an SSH tunnel to its loopback');
}

function socketUsable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.R_OK | fs.constants.W_OK);
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}

export async function apiRequest<T>(target: ApiTarget, method: 'GET' | 'POST', path: string, timeoutMs = 5000): Promise<T> {
  checkTransport(target);
  const url = new URL(path, target.url);
  const lib = url.protocol === 'https:' && !target.socketPath ? https : http;
  return new Promise<T>((resolve, reject) => {
    const req = lib.request(url, {
      method,
      headers: target.authorization ? { authorization: target.authorization } : {},
      ca: target.ca,
      rejectUnauthorized: true,
      socketPath: target.socketPath,
      timeout: timeoutMs,
    }, (res) => {
      readBody(res, (body, text) => {
        if ((res.statusCode ?? 500) >= 400) {
          const msg = (body as { message?: string })?.message ?? text;
          reject(new CroftError('CROFT_ERR_API', `${method} ${url.pathname}: HTTP ${res.statusCode}: ${msg}`));
        } else {
          resolve(body as T);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(new CroftError('CROFT_ERR_API_UNREACHABLE',
      `cannot reach the croft daemon at ${target.socketPath ?? target.url.origin}: ${err.message}. Is \`croft daemon\` running on this node?`)));
    req.end();
  });
}
