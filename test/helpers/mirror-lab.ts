// Helpers of the mirror lab tests (test/integration/mirror-*.lab.test.ts): a config folder with the
// reporting writer (test/fixtures/mirror-ack), a collector of its acknowledgements in the lab's
// client namespace, the mirror status of each node, files read inside a node.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MirrorStatusView } from '../../top/cli/mirror.js';
import type { Lab } from '../../top/lab/index.js';
import { collectorScript } from '../../top/lab/paths.js';
import { nodeApi, sleep, waitFor } from './cluster.js';
import { fixtures } from './paths.js';

export const ACK_MODULE = 'mirror-ack';
export const ACK_DIR = '/srv/croft/mirror-ack/data';
export const ACK_FILE = `${ACK_DIR}/lines.txt`;
export const ACK_VIP = '10.77.0.201';

/** A config folder holding the mirror-ack module, its module.yaml extended with `extraYaml`. */
export function ackConfig(extraYaml = ''): string {
  const config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-mirror-ack-'));
  const dir = path.join(config, 'modules', ACK_MODULE);
  fs.cpSync(path.join(fixtures, 'mirror-ack'), dir, { recursive: true });
  if (extraYaml) fs.appendFileSync(path.join(dir, 'module.yaml'), extraYaml);
  return config;
}

export async function mirrorStatus(lab: Lab, node: string, module = ACK_MODULE): Promise<MirrorStatusView | null> {
  try {
    const r = await nodeApi<MirrorStatusView>(lab, node, 'GET', `/api/v1/modules/${module}/mirror`, 1000);
    return r.status === 200 ? r.body : null;
  } catch {
    return null;
  }
}

export async function waitStates(lab: Lab, want: Record<string, string>, timeoutMs = 20_000, module = ACK_MODULE): Promise<number> {
  return waitFor(`${module} ${JSON.stringify(want)}`, async () => {
    for (const [node, state] of Object.entries(want)) {
      if ((await mirrorStatus(lab, node, module))?.state !== state) return false;
    }
    return true;
  }, timeoutMs, 20);
}

export async function cat(lab: Lab, node: string, file: string): Promise<string> {
  const r = await lab.exec(node, ['cat', file]);
  assert.equal(r.code, 0, `cat ${file} on ${node}: ${r.stderr}`);
  return r.stdout;
}

/** The numbers of complete lines (a line being appended while read is left out). */
export function lines(text: string): number[] {
  const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  return complete.split('\n').filter(Boolean).map(Number);
}

/** 1..n in order, nothing missing, nothing twice. */
export function assertSequence(nums: number[], what: string): void {
  nums.forEach((v, i) => assert.equal(v, i + 1, `${what}: line ${i + 1} is ${v}`));
}

/** The pid of the fixture's writer running on `node`, or null (the fixture's own check: a stale pid file
 *  whose pid the machine reused for another process is not the writer). */
export async function writerPid(lab: Lab, node: string, fixture: 'mirror-ack' | 'mirror-app' = 'mirror-ack'): Promise<number | null> {
  const lib = path.join(fixtures, fixture, 'lib.sh');
  const r = await lab.exec(node, ['sh', '-c', `. '${lib}' && p=$(cat "$PIDFILE" 2>/dev/null) && ours "$p" && echo "$p"`]);
  return r.code === 0 ? Number(r.stdout.trim()) : null;
}

export interface Report { atMs: number; node: string; n: number }

/**
 * The collector of the writer's acknowledgements: a TCP server in the client namespace (which
 * reaches both nodes, and survives any node's kill), appending what it receives to a host file.
 */
export class Collector {
  private constructor(private child: ChildProcess, readonly file: string, private dir: string) {}

  static async start(lab: Lab, port = 7070): Promise<Collector> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-collector-'));
    const file = path.join(dir, 'acks.txt');
    const child = lab.spawn('client', ['python3', collectorScript, String(port), file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const c = new Collector(child, file, dir);
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`collector exited (${code})`)));
      child.stdout!.once('data', () => resolve());
    });
    // The writer finds the collector in a file beside its start_prim (the lab's config is shared).
    fs.writeFileSync(path.join(lab.configDir, 'modules', ACK_MODULE, 'collector'), `${lab.clientAddresses()[0]}:${port}\n`);
    return c;
  }

  reports(): Report[] {
    if (!fs.existsSync(this.file)) return [];
    const out: Report[] = [];
    for (const l of fs.readFileSync(this.file, 'utf8').split('\n')) {
      const m = /^(\d+) (\S+) (\d+)$/.exec(l);
      if (m) out.push({ atMs: Number(m[1]), node: m[2]!, n: Number(m[3]) });
    }
    return out;
  }

  /** The highest number acknowledged (by `node`, or by anyone). */
  maxAcked(node?: string): number {
    let max = 0;
    for (const r of this.reports()) if ((node === undefined || r.node === node) && r.n > max) max = r.n;
    return max;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.pid) {
      try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* gone */ }
      await sleep(50);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function hasVip(lab: Lab, node: string, vip = ACK_VIP): Promise<boolean> {
  const r = await lab.exec(node, ['ip', '-4', '-o', 'addr', 'show']);
  return r.stdout.includes(` ${vip}/32 `);
}

/**
 * The start of most mirror-ack tests: both nodes WAIT, `croft prim` on n1, n1 PRIM with n2 SECOND,
 * then the writer on n1 acknowledging lines to the collector.
 */
export async function primOnN1(lab: Lab, c: Collector, opts: { mirroredMs?: number; ackMs?: number } = {}): Promise<void> {
  await waitStates(lab, { n1: 'WAIT', n2: 'WAIT' });
  assert.equal((await lab.exec('n1', ['croft', 'prim', ACK_MODULE])).code, 0);
  await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' }, opts.mirroredMs ?? 20_000);
  await waitFor('writer acknowledging on n1', () => c.maxAcked('n1') > 0, opts.ackMs ?? 5000);
}
