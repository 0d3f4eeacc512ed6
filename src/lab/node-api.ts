// Reach a lab node's API from the host: the host cannot route into the lab's namespaces, but it
// sees each node's local API socket (a file under the lab's state dir). Requests go straight to it
// (demo, tests), and `lab console` forwards a loopback TCP port to it. The local API needs no
// token, so the forward listens on loopback only.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { CroftError } from '../errors.js';

export function nodeApiSocket(stateDir: string, node: string): string {
  return path.join(stateDir, 'nodes', node, 'run-croft', 'api.sock');
}

/** One request to a node's local API; the body is parsed as JSON when it is JSON. */
export function nodeApiRequest<T>(stateDir: string, node: string, method: 'GET' | 'POST', urlPath: string, timeoutMs = 2000): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: nodeApiSocket(stateDir, node), path: urlPath, method, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* plain text */ }
        resolve({ status: res.statusCode ?? 0, body: body as T });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${node} ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Listens on 127.0.0.1:port and forwards every connection to `socketPath`. */
export async function forwardToSocket(socketPath: string, port: number): Promise<net.Server> {
  if (!fs.existsSync(socketPath)) {
    throw new CroftError('CROFT_ERR_LAB', `no API socket at ${socketPath}: is the node's daemon running?`);
  }
  const server = net.createServer((client) => {
    const upstream = net.connect(socketPath);
    client.pipe(upstream).pipe(client);
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new CroftError('CROFT_ERR_LAB', `cannot listen on 127.0.0.1:${port}: ${e.message}`)));
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}
