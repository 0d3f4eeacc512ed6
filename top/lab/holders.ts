// Keep-alive HTTP clients from many source addresses in the lab's client namespace (hold.mjs): the
// farm lab tests and `croft lab chaos` read from them which node answered each connection and how
// each connection ended.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Lab } from './index.js';
import { repoRoot } from './paths.js';
import { waitFor } from './wait.js';

/** The client program (a source file, run by node in the client namespace). */
export const holdScript = path.join(repoRoot, 'top', 'lab', 'hold.mjs');

export interface Conn { src: string; answers: { node: string; at: number }[]; events: { what: string; at: number }[]; replies: number }

/** hold.mjs in the client: keep-alive connections from every source, until stop(). */
export class Holders {
  readonly #child: ChildProcess;
  #out = '';
  readonly #exit: Promise<number>;
  constructor(lab: Lab, vip: string, sources: string[], port = 80) {
    this.#child = lab.spawn('client', ['node', holdScript,
      JSON.stringify({ host: vip, port, sources, everyMs: 100 })], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.stdout!.on('data', (c: Buffer) => { this.#out += c.toString(); });
    this.#exit = new Promise((resolve) => this.#child.on('exit', (code) => resolve(code ?? 1)));
  }
  ready(timeoutMs = 20_000): Promise<number> {
    return waitFor('every client answered once', () => this.#out.startsWith('ready\n'), timeoutMs, 50);
  }
  async stop(): Promise<Conn[]> {
    this.#child.stdin!.end('stop\n');
    const code = await this.#exit;
    if (code !== 0) throw new Error(`hold.mjs exited with ${code}`);
    const line = this.#out.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`hold.mjs printed no result: ${this.#out.slice(0, 200)}`);
    return (JSON.parse(line) as { conns: Conn[] }).conns;
  }
  kill(): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL');
  }
}
