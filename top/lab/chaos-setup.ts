// The lab of a `croft lab chaos` campaign built from the user's configuration: the lab up without
// daemons, then (`witness: 'redis'`) a redis-server in the client namespace and every mirror module's
// witness pointed at it (a lease with `ttlMs`), then each mirror node's own disks for the disk-full
// fault (chaos-disks.ts), then the daemons. `close()` stops what it started (redis by its pid) and
// takes the lab down.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { CroftError } from '../../src/errors.js';
import { createChaosDisks, type NodeDisks } from './chaos-disks.js';
import { Lab, type LabUpOptions } from './index.js';
import { waitFor } from './wait.js';

export interface ChaosLabOptions extends Omit<LabUpOptions, 'daemons'> {
  witness?: 'config' | 'redis';
  /** The redis lease (ms) with `witness: 'redis'`. Default 1000 (a lab is a LAN on one machine). */
  ttlMs?: number;
}

export interface ChaosLab {
  lab: Lab;
  witnessPid: number | null;
  /** Per mirror node, its disks (the disk-full fault). */
  disks: Map<string, NodeDisks>;
  close(): Promise<void>;
}

/** Sets `witness:` in every kind: mirror module.yaml under the lab's config (comments kept). */
function pointWitness(configDir: string, url: string, ttlMs: number): string[] {
  const changed: string[] = [];
  const modules = path.join(configDir, 'modules');
  for (const name of fs.existsSync(modules) ? fs.readdirSync(modules).sort() : []) {
    // modules/<name>/module.yaml, or modules/<name>.yaml
    const file = name.endsWith('.yaml') ? path.join(modules, name) : path.join(modules, name, 'module.yaml');
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) continue;
    const doc = parseDocument(fs.readFileSync(file, 'utf8'));
    if (doc.get('kind') !== 'mirror') continue;
    doc.set('witness', doc.createNode({ type: 'redis', url, ttl_ms: ttlMs }, { flow: true }));
    fs.writeFileSync(file, doc.toString());
    changed.push(name);
  }
  return changed;
}

export async function chaosLab(o: ChaosLabOptions): Promise<ChaosLab> {
  const lab = await Lab.up({ ...o, daemons: false });
  let redis: ChildProcess | null = null;
  let redisDir: string | null = null;
  const close = async () => {
    if (redis?.pid && redis.exitCode === null) {
      try { process.kill(redis.pid, 'SIGCONT'); process.kill(redis.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await lab.down();
    if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true });
  };
  try {
    if (o.witness === 'redis') {
      const client = lab.clientAddresses()[0]!;
      redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-chaos-redis-'));
      const [cmd, ...args] = lab.enterArgv('client', ['redis-server', '--bind', client, '--port', '6379', '--appendonly', 'yes',
        '--appendfsync', 'always', '--dir', redisDir, '--save', '', '--protected-mode', 'no']);
      redis = spawn(cmd!, args, { stdio: 'ignore' });
      await waitFor('redis answers', async () => (await lab.exec('client', ['redis-cli', '-h', client, 'ping'])).stdout.includes('PONG'), 10_000, 100);
      if (pointWitness(lab.configDir, `redis://${client}:6379`, o.ttlMs ?? 1000).length === 0) {
        throw new CroftError('CROFT_ERR_USAGE', '--witness redis: the configuration has no mirror module');
      }
    }
    const config = loadConfig(lab.configDir);
    const disks = await createChaosDisks(lab, config.modules.filter((m) => m.kind === 'mirror'), config.cluster.stateDir);
    for (const n of lab.nodes) await lab.start(n, o.daemonCommand?.(n));
    // nsenter (no PID namespace on the client) execs redis-server: its pid is the server's.
    return { lab, witnessPid: redis?.pid ?? null, disks, close };
  } catch (e) {
    await close();
    throw e;
  }
}
