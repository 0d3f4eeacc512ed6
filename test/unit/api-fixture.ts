// What the API tests share: a configuration of two loopback nodes (n1 serves `web`), and the
// cleanup that closes the apps, the daemon's module runtimes and the folder even when a test failed.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Daemon } from '../../top/daemon/daemon.js';

/** cluster.yaml of n1 (127.0.0.1) and n2 (127.0.0.2) with `api:` then apiLines, and modules/<name>.yaml. */
export function writeApiConfig(dir: string, name: string, apiLines: readonly string[],
  modules: Record<string, string> = { web: 'kind: light\nnodes: [n1]\nautostart: false\n' }): void {
  fs.mkdirSync(path.join(dir, 'modules'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'cluster.yaml'), [
    `name: ${name}`,
    `key: "${'k'.repeat(40)}"`,
    'nodes:',
    '  n1: { addresses: [127.0.0.1] }',
    '  n2: { addresses: [127.0.0.2] }',
    ...(apiLines.length > 0 ? ['api:', ...apiLines] : []),
  ].join('\n'), { mode: 0o600 });
  for (const [module, text] of Object.entries(modules)) fs.writeFileSync(path.join(dir, 'modules', `${module}.yaml`), text);
}

/** Closes the apps, then the daemon's runtimes, then removes dir. */
export async function closeApi(apps: readonly FastifyInstance[], daemon: Daemon, dir: string): Promise<void> {
  try {
    for (const app of apps) await app.close();
    await Promise.all([...daemon.runtimes.values()].map((rt) => rt.close()));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
