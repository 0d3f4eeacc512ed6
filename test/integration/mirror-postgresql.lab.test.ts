// modules/postgresql-mirror in a real 2-node lab: real daemons, Debian's PostgreSQL on the FUSE
// mirror, a client in the lab's client namespace committing numbered rows through the VIP (one
// INSERT per transaction, autocommit, over one psql connection that is opened again when it fails).
// A row counts as committed only once its INSERT returned the row to the client. The PRIM is killed
// (lab kill: SIGKILL of its daemon and PostgreSQL) three times, alternating nodes: every committed
// row must be on the survivor, the killed node must come back as SECOND by reintegration, and
// `croft mirror verify` must find both sides identical. Figures are printed on lines starting with '# '.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../../src/lab/index.js';
import { firstEventAfter, sleep, stats, waitFor, type LogLine } from '../helpers/cluster.js';
import { repoRoot } from '../helpers/paths.js';
import { hasVip as vipOn, mirrorStatus as statusOf, waitStates as waitStatesOf } from '../helpers/mirror-lab.js';

const MODULE = 'postgresql-mirror';
const VIP = '10.77.0.60'; // modules/postgresql-mirror/module.yaml
const SOCK = `/run/croft/${MODULE}/sock`; // lib.sh: the server's Unix socket folder on the primary
const KILLS = 3;

const mirrorStatus = (lab: Lab, node: string) => statusOf(lab, node, MODULE);
const waitStates = (lab: Lab, want: Record<string, string>, timeoutMs: number) => waitStatesOf(lab, want, timeoutMs, MODULE);
const hasVip = (lab: Lab, node: string) => vipOn(lab, node, VIP);

/** The row numbers in the table, read on `node` itself (its server's Unix socket, as postgres). */
async function rowsOn(lab: Lab, node: string): Promise<number[]> {
  const r = await lab.exec(node, ['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', SOCK, '-U', 'postgres', '-d', 'croft',
    '-c', 'select n from committed order by n'], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, `select on ${node}: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

interface Ack { n: number; atMs: number; connection: number }

/**
 * The client: one psql session on the VIP at a time, fed one `INSERT ... RETURNING n` after the
 * other. psql prints the row only once the server's answer is complete, which in autocommit comes
 * after the commit (PostgreSQL commits before sending CommandComplete): a printed number is a
 * committed row. A lost connection ends a non-interactive psql (exit 2); an error ends it too
 * (ON_ERROR_STOP); a statement unanswered for 3 s kills it. The row in flight is then unknown
 * (committed or not), and the next session takes the next number.
 */
class Committer {
  readonly acks: Ack[] = [];
  attempted = 0; // highest number sent
  connections = 0;
  /** When each session (1, 2...) was started: index connection - 1. */
  readonly openedAtMs: number[] = [];
  failures: string[] = [];
  private proc: ChildProcess | null = null;
  private stopped = false;
  private paused = false;
  private loop: Promise<void> | null = null;

  constructor(private readonly lab: Lab) {}

  /** What stopped the loop (an unexpected answer): thrown by pause() and committed. */
  broken: Error | null = null;

  start(): void {
    this.loop = this.run().catch((e: unknown) => { this.broken = e instanceof Error ? e : new Error(String(e)); this.idle = true; });
  }

  /** Holds the next INSERT until resume(); resolves once no statement is in flight. */
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

  private idle = true;
  private lines: string[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private stderr = '';

  private connect(): void {
    this.connections++;
    this.openedAtMs.push(Date.now());
    this.lines = [];
    this.closed = false;
    this.stderr = '';
    const p = this.lab.spawn('client', ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', VIP, '-U', 'croft', '-d', 'croft'], {
      env: { PGPASSWORD: 'croft', PGCONNECT_TIMEOUT: '2' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    p.stdin!.on('error', () => undefined); // EPIPE when psql exited at connect
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
      this.proc!.stdin!.write(`insert into committed (n) values (${n}) returning n;\n`);
      const line = await this.nextLine(3000);
      if (line === String(n)) {
        this.acks.push({ n, atMs: Date.now(), connection });
      } else {
        assert.equal(line, null, `unexpected answer to row ${n}: ${line}`);
        this.failures.push(`${n}: ${this.closed ? `psql ended: ${this.stderr.trim().split('\n').pop()}` : 'no answer in 3 s'}`);
        this.kill();
        await sleep(20); // a bounded retry rate while the VIP has no server
      }
      this.idle = true;
    }
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
}

function assertContainsAll(table: number[], committed: number[], attempted: number, where: string): void {
  const have = new Set(table);
  const missing = committed.filter((n) => !have.has(n));
  assert.deepEqual(missing, [], `${where}: committed rows missing`);
  assert.ok(table.every((n) => n >= 1 && n <= attempted), `${where}: a row that was never sent`);
  assert.equal(new Set(table).size, table.length, `${where}: a row twice`);
}

describe('postgresql-mirror: committed rows survive the kill of the primary', { timeout: 240_000 }, () => {
  let lab: Lab;
  let config: string;
  let client: Committer | null = null;
  before(async () => {
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-pgmirror-'));
    fs.cpSync(path.join(repoRoot, 'modules', MODULE), path.join(config, 'modules', MODULE), { recursive: true });
    lab = await Lab.up({ name: `pm${process.pid % 100000}`, nodes: 2, clients: 1, config });
  });
  after(async () => {
    await client?.stop().catch(() => undefined);
    client?.kill();
    if (lab) {
      for (const n of ['n1', 'n2']) {
        const dir = path.join(os.tmpdir(), `croft-pgmirror-lab-${n}`);
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        // Logs of the last run for a person looking into a failure (daemon and PostgreSQL).
        for (const [from, to] of [[path.join(lab.stateDir, 'nodes', n, 'daemon.log'), 'daemon.log']] as const) {
          if (fs.existsSync(from)) fs.cpSync(from, path.join(dir, to));
        }
        await lab.exec(n, ['cp', `/var/log/croft/${MODULE}.log`, path.join(dir, 'postgresql.log')]).catch(() => undefined);
      }
    }
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('croft prim n1: PRIM/SECOND, the server on n1 behind the VIP', async () => {
    await waitStates(lab, { n1: 'WAIT', n2: 'WAIT' }, 20_000);
    const t0 = Date.now();
    const r = await lab.exec('n1', ['croft', 'prim', MODULE]);
    assert.equal(r.code, 0, r.stderr);
    await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' }, 60_000);
    const mirroredMs = Date.now() - t0;
    // The mirror's state does not wait for start_prim (initdb, then the server's start): the
    // server is ready when it answers through the VIP.
    await waitFor('the server answers through the VIP', async () => (await lab.exec('client', ['psql', '-X', '-At', '-h', VIP, '-U', 'croft', '-d', 'croft',
      '-c', 'select 1'], { env: { PGPASSWORD: 'croft', PGCONNECT_TIMEOUT: '2' } })).stdout.trim() === '1', 120_000, 200);
    console.log(`# croft prim n1 -> PRIM/SECOND in ${mirroredMs} ms; the server answers through the VIP after ${Date.now() - t0} ms (initdb on the mirror included)`);
    assert.ok(await hasVip(lab, 'n1'), 'the VIP is on n1');
    assert.ok(!(await hasVip(lab, 'n2')), 'and not on n2');
    const c = await lab.exec('client', ['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-h', VIP, '-U', 'croft', '-d', 'croft', '-c',
      'create table committed (n integer primary key, at timestamptz not null default now())'], { env: { PGPASSWORD: 'croft' } });
    assert.equal(c.code, 0, `create table through the VIP: ${c.stderr}`);
  });

  test(`${KILLS} kills of the PRIM under commits: no committed row lost, reintegration, verify`, async () => {
    client = new Committer(lab);
    client.start();
    const failoverMs: number[] = [];
    let prim = 'n1';
    let second = 'n2';
    for (let round = 1; round <= KILLS; round++) {
      const roundStartMs = Date.now();
      const before = client.acks.length;
      await waitFor('commits before the kill', () => client!.ok() && client!.acks.length >= before + 100, 20_000, 20);
      await sleep(500);
      const killAt = Date.now();
      await lab.kill(prim);
      const killedAt = Date.now();
      const committedBefore = client.acks.filter((a) => a.atMs >= roundStartMs && a.atMs <= killAt).length;
      // The first commit of a session opened after the kill returned: it cannot be on the dead node.
      const opened = (a: Ack) => client!.openedAtMs[a.connection - 1]! > killedAt;
      await waitFor(`a commit on ${second} after the kill of ${prim}`, () => client!.ok() && client!.acks.some(opened), 30_000, 10);
      const first = client.acks.find(opened)!;
      const ms = first.atMs - killAt;
      failoverMs.push(ms);
      assert.equal((await mirrorStatus(lab, second))?.state, 'ALONE', `${second} runs ALONE`);
      assert.ok(await hasVip(lab, second), `the VIP is on ${second}`);
      await sleep(1000);
      await client.pause();
      const committed = client.committed;
      const table = await rowsOn(lab, second);
      client.resume();
      assertContainsAll(table, committed, client.attempted, `${second} after the kill of ${prim}`);
      const afterKill = client.acks.filter((a) => a.atMs > killAt).length;
      // Where the time went, from the survivor's log (ms after the kill).
      const at = (match: (l: LogLine) => boolean) => {
        const t = firstEventAfter(lab, second, killAt, (l) => l.module === MODULE && match(l));
        return t === null ? '?' : String(t - killAt);
      };
      console.log(`# round ${round}: lab kill ${prim} (PRIM) -> first commit through the VIP on ${second} in ${ms} ms `
        + `(${second} ALONE at ${at((l) => l.to === 'ALONE')}, VIP at ${at((l) => l.event === 'mirror_vip' && l.held === true)}, `
        + `start_prim done at ${at((l) => l.script === 'start_prim' && l.exitCode === 0)}); `
        + `${committedBefore} rows committed in this round before the kill, ${afterKill} after; ${second} holds all ${committed.length} committed rows `
        + `(${table.length} in the table, ${client.attempted} sent)`);

      const dirtyBefore = (await mirrorStatus(lab, second))?.dirtyBytes ?? null;
      const t1 = Date.now();
      await lab.start(prim);
      await waitStates(lab, { [prim]: 'SECOND', [second]: 'PRIM' }, 60_000);
      const last = (await mirrorStatus(lab, second))?.lastReintegration;
      assert.ok(last, `${second} reports its reintegration`);
      console.log(`# round ${round}: ${prim} restarted -> SECOND in ${Date.now() - t1} ms; reintegration ${last.full ? 'FULL' : 'from the dirty log'}: `
        + `${last.bytesCopied} bytes copied for ${last.dirtyBytesAtStart} dirty bytes in ${last.dirtyEntriesAtStart} entries `
        + `(${dirtyBefore} dirty bytes shown before the restart), ${last.durationMs} ms`);
      assert.equal(last.full, false, 'a trusted dirty log: only what changed is copied');
      // lab kill leaves the node's kernel (its namespaces) up, so the VIP it held stayed on its
      // interface: the restarted daemon removes it before anything else (both nodes would answer
      // ARP for it otherwise).
      assert.ok(!(await hasVip(lab, prim)), `the restarted ${prim} (SECOND) no longer holds the VIP ${VIP}`);

      const commitsNow = client.acks.length;
      await waitFor('commits go on while mirrored again', () => client!.ok() && client!.acks.length >= commitsNow + 50, 20_000, 20);
      await client.pause();
      try {
        assertContainsAll(await rowsOn(lab, second), client.committed, client.attempted, `${second} (PRIM) after the reintegration`);
        const v = await lab.exec(second, ['croft', 'mirror', 'verify', MODULE], { timeoutMs: 60_000 });
        assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
        assert.match(v.stdout, /identical/);
        console.log(`# round ${round}: ${v.stdout.trim()}`);
      } finally {
        client.resume();
      }
      [prim, second] = [second, prim];
    }
    await client.stop();
    const s = stats(failoverMs);
    console.log(`# failover (kill of the PRIM -> first commit through the VIP on the other node), ${failoverMs.length} runs: `
      + `min ${s.min} ms, median ${s.median} ms, max ${s.max} ms (${failoverMs.join(', ')}; heartbeat timeout 500 ms)`);
    console.log(`# ${client.acks.length} rows committed in all, ${client.attempted} sent, ${client.connections} sessions; failed statements: ${client.failures.length}`);
    for (const ms of failoverMs) assert.ok(ms < 15_000, `failover within seconds (${ms} ms)`);
    const finalRows = await rowsOn(lab, prim);
    assertContainsAll(finalRows, client.committed, client.attempted, `${prim} at the end`);
  });
});
