// Helpers of the farm lab tests: a node's view of a farm module through its API; keep-alive clients.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { FarmStatus } from '../../farm/runtime.js';
import type { Lab } from '../../top/lab/index.js';
import { nodeApi, waitFor } from './cluster.js';
import { fixtures } from './paths.js';

/** GET /api/v1/modules/<module> on `node`: its state and farm status, or undefined when it does not answer. */
export async function moduleView(lab: Lab, node: string, module = 'web'): Promise<{ state?: string; farm?: FarmStatus } | undefined> {
  try {
    const r = await nodeApi<{ state?: string; farm?: FarmStatus }>(lab, node, 'GET', `/api/v1/modules/${module}`);
    return r.status === 200 ? r.body : undefined;
  } catch {
    return undefined;
  }
}

export async function farmStatus(lab: Lab, node: string, module = 'web'): Promise<FarmStatus | undefined> {
  return (await moduleView(lab, node, module))?.farm;
}

export interface Conn { src: string; answers: { node: string; at: number }[]; events: { what: string; at: number }[]; replies: number }

/** hold.mjs in the client: keep-alive connections from every source, until stop(). */
export class Holders {
  readonly #child: ChildProcess;
  #out = '';
  readonly #exit: Promise<number>;
  constructor(lab: Lab, vip: string, sources: string[]) {
    this.#child = lab.spawn('client', ['node', path.join(fixtures, 'farm-lab', 'hold.mjs'),
      JSON.stringify({ host: vip, port: 80, sources, everyMs: 100 })], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.stdout!.on('data', (c: Buffer) => { this.#out += c.toString(); });
    this.#exit = new Promise((resolve) => this.#child.on('exit', (code) => resolve(code ?? 1)));
  }
  ready(): Promise<number> {
    return waitFor('every client answered once', () => this.#out.startsWith('ready\n'), 20_000, 50);
  }
  async stop(): Promise<Conn[]> {
    this.#child.stdin!.end('stop\n');
    assert.equal(await this.#exit, 0);
    const line = this.#out.split('\n').find((l) => l.startsWith('{'));
    assert.ok(line, `hold.mjs printed its result: ${this.#out.slice(0, 200)}`);
    return (JSON.parse(line) as { conns: Conn[] }).conns;
  }
  kill(): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL');
  }
}
