// The CLI's client of the local daemon's API: address and credentials from the config dir.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { loadConfig } from '../config/load.js';
import { CroftError } from '../errors.js';

export const defaultConfigDir = process.env.CROFT_CONFIG ?? '/etc/croft';

export interface ApiTarget {
  url: URL;
  /** When set, requests go to this unix socket (the daemon's local API) instead of url. */
  socketPath?: string;
  authorization?: string;
  ca?: Buffer;
}

export function targetFromConfig(configDir: string, apiOverride?: string, tokenOverride?: string): ApiTarget {
  const config = loadConfig(configDir);
  const api = config.cluster.api;
  // A daemon listening on every address is reached on loopback.
  const host = api.host === '0.0.0.0' || api.host === '::' ? '127.0.0.1' : api.host;
  const url = new URL(apiOverride ?? `${api.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${api.port}`);
  const token = tokenOverride ?? api.tokens[0];
  const user = api.users[0];
  const authorization = token ? `Bearer ${token}`
    : user ? `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}` : undefined;
  // The local socket needs no credentials and works whatever the API's address; prefer it.
  if (!apiOverride && !tokenOverride && socketUsable(api.socket)) return { url: new URL('http://localhost'), socketPath: api.socket };
  return { url, authorization, ca: api.tls ? fs.readFileSync(api.tls.cert) : undefined };
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
  const url = new URL(path, target.url);
  const lib = url.protocol === 'https:' && !target.socketPath ? https : http;
  return new Promise<T>((resolve, reject) => {
    const req = lib.request(url, {
      method,
      headers: target.authorization ? { authorization: target.authorization } : {},
      ca: target.ca,
      socketPath: target.socketPath,
      timeout: timeoutMs,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* plain text */ }
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
