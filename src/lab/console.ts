// Reach a lab node's console from the host: the host cannot route into the lab's namespaces, but
// it sees each node's local API socket (a file under the lab's state dir), so a loopback TCP
// listener forwards to it. Loopback only: the local API needs no token.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CroftError } from '../errors.js';

export function nodeApiSocket(stateDir: string, node: string): string {
  return path.join(stateDir, 'nodes', node, 'run-croft', 'api.sock');
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
