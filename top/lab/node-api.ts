// Reach a lab node's API from the host: the host cannot route into the lab's namespaces, but it
// sees each node's local API socket (a file under the lab's state dir). Requests go straight to it
// (demo, tests), and `lab console` forwards a loopback TCP port to it, read-only (the local API
// needs no token: a local user must not command through the forward).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { CroftError } from '../../src/errors.js';
import { readBody } from '../http-body.js';

export function nodeApiSocket(stateDir: string, node: string): string {
  return path.join(stateDir, 'nodes', node, 'run-croft', 'api.sock');
}

/** One request to a node's local API; the body is parsed as JSON when it is JSON. */
export function nodeApiRequest<T>(stateDir: string, node: string, method: 'GET' | 'POST', urlPath: string, timeoutMs = 2000): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: nodeApiSocket(stateDir, node), path: urlPath, method, timeout: timeoutMs }, (res) => {
      readBody(res, (body) => resolve({ status: res.statusCode ?? 0, body: body as T }));
    });
    req.on('timeout', () => req.destroy(new Error(`${node} ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Listens on 127.0.0.1:port and forwards GET and HEAD requests to `socketPath` (read-only: the
 * socket needs no credential, and any local user can reach a loopback port, so a command through
 * it would be a local user commanding a root daemon; commands go through `croft lab exec`).
 */
export async function forwardToSocket(socketPath: string, port: number): Promise<net.Server> {
  if (!fs.existsSync(socketPath)) {
    throw new CroftError('CROFT_ERR_LAB', `no API socket at ${socketPath}: is the node's daemon running?`);
  }
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'CROFT_ERR_LAB', message: 'the lab console is read-only: run commands with `croft lab exec <node> croft ...`' }));
      req.resume();
      return;
    }
    const upstream = http.request({ socketPath, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`cannot reach the node's API: ${e.message}\n`);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new CroftError('CROFT_ERR_LAB', `cannot listen on 127.0.0.1:${port}: ${e.message}`)));
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}
