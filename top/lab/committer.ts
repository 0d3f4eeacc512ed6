// A database client that knows which rows were committed (the mirror lab tests and `croft lab chaos`): one session of a
// line client (psql, mariadb, test/fixtures/redis-client) in the lab's client namespace at a time,
// fed one statement after the other. The client prints the row's number alone on a line only once
// the server answered the statement, after its commit: a printed number is a committed row. A lost
// connection or an error ends the client (each is started so that it does); a statement unanswered
// for 3 s kills it. The row in flight is then unknown (committed or not), and the next session
// takes the next number.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import type { Lab } from './index.js';
import { sleep, waitFor } from './wait.js';

export interface Ack { n: number; atMs: number; connection: number }

export interface CommitterClient {
  /** The line client, started in the lab's client namespace. */
  argv: string[];
  env?: Record<string, string>;
  /** What commits row n (a line on the client's stdin); the client then prints n alone on a line. */
  statement(n: number): string;
}

export class Committer {
  readonly acks: Ack[] = [];
  attempted = 0; // highest number sent
  connections = 0;
  /** When each session (1, 2...) was started: index connection - 1. */
  readonly openedAtMs: number[] = [];
  failures: string[] = [];
  /** What stopped the loop (an unexpected answer): thrown by pause(), ok() and committed. */
  broken: Error | null = null;
  private proc: ChildProcess | null = null;
  private stopped = false;
  private paused = false;
  private loop: Promise<void> | null = null;
  private idle = true;
  private lines: string[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private stderr = '';

  constructor(private readonly lab: Lab, private readonly client: CommitterClient) {}

  start(): void {
    this.loop = this.run().catch((e: unknown) => { this.broken = e instanceof Error ? e : new Error(String(e)); this.idle = true; });
  }

  /** Holds the next statement until resume(); resolves once none is in flight. */
  async pause(): Promise<void> {
    this.paused = true;
    await waitFor('client idle', () => this.idle, 10_000, 10);
    if (this.broken) throw this.broken;
  }

  resume(): void {
    this.paused = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.kill();
  }

  kill(): void {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    this.proc = null;
  }

  /** Throws what broke the loop, for the test's waits. */
  ok(): true {
    if (this.broken) throw this.broken;
    return true;
  }

  get committed(): number[] {
    if (this.broken) throw this.broken;
    return this.acks.map((a) => a.n);
  }

  /** Acknowledgements of sessions opened after `ms`: they cannot have reached a node killed before it. */
  openedAfter(ms: number): Ack[] {
    return this.acks.filter((a) => this.openedAtMs[a.connection - 1]! > ms);
  }

  private connect(): void {
    this.connections++;
    this.openedAtMs.push(Date.now());
    this.lines = [];
    this.closed = false;
    this.stderr = '';
    const p = this.lab.spawn('client', this.client.argv, { env: this.client.env, stdio: ['pipe', 'pipe', 'pipe'] });
    p.stdin!.on('error', () => undefined); // EPIPE when the client exited at connect
    readline.createInterface({ input: p.stdout! }).on('line', (l) => { this.lines.push(l); this.wake?.(); });
    p.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    p.on('close', () => { this.closed = true; this.wake?.(); });
    this.proc = p;
  }

  /** The next line of the session, or null when it ended or timeoutMs passed. */
  private async nextLine(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return l;
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.wake = () => { clearTimeout(t); r(); };
      });
      this.wake = null;
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.paused) { await sleep(10); continue; }
      this.idle = false;
      if (!this.proc) this.connect();
      const connection = this.connections;
      const n = ++this.attempted;
      this.proc!.stdin!.write(this.client.statement(n));
      const line = await this.nextLine(3000);
      if (line === String(n)) {
        this.acks.push({ n, atMs: Date.now(), connection });
      } else {
        assert.equal(line, null, `unexpected answer to row ${n}: ${line}`);
        this.failures.push(`${n}: ${this.closed ? `client ended: ${this.stderr.trim().split('\n').pop()}` : 'no answer in 3 s'}`);
        this.kill();
        await sleep(20); // a bounded retry rate while the VIP has no server
      }
      this.idle = true;
    }
  }
}

/** Every committed row is in `table`, which holds no row never sent and none twice. */
export function assertContainsAll(table: number[], committed: number[], attempted: number, where: string): void {
  const have = new Set(table);
  const missing = committed.filter((n) => !have.has(n));
  assert.deepEqual(missing, [], `${where}: committed rows missing`);
  assert.ok(table.every((n) => n >= 1 && n <= attempted), `${where}: a row that was never sent`);
  assert.equal(new Set(table).size, table.length, `${where}: a row twice`);
}
