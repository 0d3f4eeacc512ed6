// The 2-tier application under load (issue 14): modules/orders-web (a farm on n1, n2, n3: the order
// service behind the VIP 10.77.0.110) in front of modules/postgresql-mirror (PostgreSQL on n1 and n2
// behind 10.77.0.60), the web module depending on the database through its `db` checker. A client
// in the lab's client namespace sends orders from 200 source addresses and records every order
// acknowledged to it (test/fixtures/two-tier/orders.mjs). Then: lab kill of the database PRIM n1;
// n1 back (SECOND, in sync); lab crash of the web node n3 (the farm needs a majority of its 3 nodes,
// hence n1 back first); n3 back; lab kill of the new PRIM n2. Asserts:
// every acknowledged order is in the database at the end (same id, same reference), the web module
// went WAIT and back UP with the database (seen through each node's API), and orders succeed again
// after each failure. What each failure cost the clients (errors, max latency, time until every
// order succeeds again) is printed on '#' lines.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import { sleep, waitFor } from '../helpers/cluster.js';
import { farmStatus, moduleView } from '../helpers/farm-lab.js';
import { hasVip, mirrorStatus, waitStates } from '../helpers/mirror-lab.js';
import { fixtures, repoRoot } from '../helpers/paths.js';

const WEB = 'shop';
const DB = 'db';
const WEB_VIP = '10.77.0.110'; // modules/orders-web/module.yaml
const DB_VIP = '10.77.0.60'; // modules/postgresql-mirror/module.yaml
const NODES = ['n1', 'n2', 'n3'];

interface Ack { id: number; sent: number; lat: number; node: string; ref: string }
interface Failed { sent: number; lat: number; why: string }

/** orders.mjs in the client namespace: its acknowledged and failed orders, parsed as they stream. */
class OrderClient {
  readonly acks: Ack[] = [];
  readonly errors: Failed[] = [];
  readonly #child: ChildProcess;
  readonly #exit: Promise<number>;
  #buf = '';
  #done = false;
  constructor(lab: Lab, sources: string[]) {
    this.#child = lab.spawn('client', ['node', path.join(fixtures, 'two-tier', 'orders.mjs'),
      JSON.stringify({ url: `http://${WEB_VIP}:8000/order`, sources, workers: 20, timeoutMs: 2000, pauseMs: 100 })],
    { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.stdout!.on('data', (c: Buffer) => {
      this.#buf += c.toString();
      const lines = this.#buf.split('\n');
      this.#buf = lines.pop()!;
      for (const l of lines) this.#line(l);
    });
    this.#exit = new Promise((resolve) => this.#child.on('exit', (code) => resolve(code ?? 1)));
  }
  #line(l: string): void {
    const f = l.split(' ');
    if (f[0] === 'ok' && f.length === 6) this.acks.push({ id: Number(f[1]), sent: Number(f[2]), lat: Number(f[3]), node: f[4]!, ref: f[5]! });
    else if (f[0] === 'err' && f.length === 4) this.errors.push({ sent: Number(f[1]), lat: Number(f[2]), why: f[3]! });
    else if (l === 'done') this.#done = true;
    else if (l) throw new Error(`orders.mjs printed an unexpected line: ${l}`);
  }
  /** Acknowledged orders sent after `ms`. */
  acksSince(ms: number): number {
    return this.acks.filter((a) => a.sent >= ms).length;
  }
  async stop(): Promise<void> {
    this.#child.stdin!.end('stop\n');
    assert.equal(await this.#exit, 0, 'orders.mjs exited 0');
    assert.ok(this.#done, 'orders.mjs finished its orders in flight');
  }
  kill(): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL');
  }
}

/** Polls the web module's state on `nodes` through their API every 100 ms: each node's changes. */
class StatePoller {
  readonly seen = new Map<string, { state: string; at: number }[]>();
  #stop = false;
  readonly #loop: Promise<void>;
  constructor(lab: Lab, nodes: string[]) {
    for (const n of nodes) this.seen.set(n, []);
    this.#loop = (async () => {
      while (!this.#stop) {
        await Promise.all(nodes.map(async (n) => {
          const state = (await moduleView(lab, n, WEB))?.state ?? '?';
          const list = this.seen.get(n)!;
          if (list[list.length - 1]?.state !== state) list.push({ state, at: Date.now() });
        }));
        await sleep(100);
      }
    })();
  }
  /** The states `node` went through, in order, from `since` on (repeats merged; '?' = no answer). */
  path(node: string, since: number): string[] {
    const list = this.seen.get(node)!;
    let i = 0;
    list.forEach((s, j) => { if (s.at <= since) i = j; });
    return list.slice(i).map((s) => s.state);
  }
  firstAt(node: string, state: string, since: number): number | null {
    return this.seen.get(node)!.find((s) => s.at >= since && s.state === state)?.at ?? null;
  }
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

async function webUp(lab: Lab, nodes: string[]): Promise<boolean> {
  for (const n of nodes) if ((await moduleView(lab, n, WEB))?.state !== 'UP') return false;
  const members = (await farmStatus(lab, nodes[0]!, WEB))?.members;
  return JSON.stringify(members) === JSON.stringify(nodes);
}

/** What a failure at `t0` cost the clients up to `t1`: the orders that failed (sent before t1,
 *  ended after t0), the slowest order, the longest time with no order acknowledged, and when the
 *  last failed order ended (every order after it succeeded). */
function cost(c: OrderClient, t0: number, t1: number): { errors: number; why: string; maxLat: number; gap: number; lastErr: number } {
  const errs = c.errors.filter((e) => e.sent + e.lat >= t0 && e.sent < t1);
  const oks = c.acks.filter((a) => a.sent + a.lat >= t0 && a.sent < t1);
  const maxLat = Math.max(0, ...errs.map((e) => e.lat), ...oks.map((a) => a.lat));
  const ends = [t0, ...oks.map((a) => a.sent + a.lat).sort((a, b) => a - b)];
  let gap = 0;
  for (let i = 1; i < ends.length; i++) gap = Math.max(gap, ends[i]! - ends[i - 1]!);
  const lastErr = errs.length ? Math.max(...errs.map((e) => e.sent + e.lat)) - t0 : 0;
  const kinds = new Map<string, number>();
  for (const e of errs) kinds.set(e.why, (kinds.get(e.why) ?? 0) + 1);
  return { errors: errs.length, why: [...kinds].map(([k, n]) => `${n} ${k}`).join(', ') || 'none', maxLat, gap, lastErr };
}

function line(what: string, f: ReturnType<typeof cost>, more: string): string {
  return `# 2-tier ${what}: ${f.errors} failed orders (${f.why}), max latency ${f.maxLat} ms (client timeout 2000 ms), `
    + `no order acknowledged for ${f.gap} ms at most, the last failed order ended ${f.lastErr} ms after the failure; ${more}`;
}

/** The web module on `nodes` went WAIT then UP after `t0` (seen through their API): ms to the first
 *  WAIT and to the last node's UP after it. */
function waitedUp(p: StatePoller, nodes: string[], t0: number): { wait: number; up: number } {
  for (const n of nodes) {
    const seen = p.path(n, t0);
    assert.ok(seen.includes('WAIT') && seen.indexOf('WAIT') < seen.lastIndexOf('UP'), `${WEB} on ${n} went WAIT then UP with the database: ${seen.join(' -> ')}`);
  }
  const wait = Math.min(...nodes.map((n) => p.firstAt(n, 'WAIT', t0)!));
  const up = Math.max(...nodes.map((n) => p.firstAt(n, 'UP', p.firstAt(n, 'WAIT', t0)!)!));
  return { wait: wait - t0, up: up - t0 };
}

describe('2-tier: orders through the web farm into the PostgreSQL mirror survive database and web failures', { timeout: 150_000 }, () => {
  let lab: Lab;
  let config: string;
  let client: OrderClient | null = null;
  let poller: StatePoller | null = null;
  beforeAll(async () => {
    // Debian's python3 with psycopg2 runs the order service (modules/orders-web/lib.sh): say so
    // plainly rather than time out waiting for a web tier that cannot start.
    const py = spawnSync('/usr/bin/python3', ['-c', 'import psycopg2'], { encoding: 'utf8' });
    assert.equal(py.status, 0, `modules/orders-web needs /usr/bin/python3 with psycopg2 (make setup installs python3-psycopg2): ${py.stderr ?? py.error}`);
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-twotier-'));
    fs.cpSync(path.join(repoRoot, 'modules', 'postgresql-mirror'), path.join(config, 'modules', DB), { recursive: true });
    fs.cpSync(path.join(repoRoot, 'modules', 'orders-web'), path.join(config, 'modules', WEB), { recursive: true });
    lab = await Lab.up({ name: `tt${process.pid % 100000}`, nodes: 3, clients: 200, config, intervalMs: 100, timeoutMs: 500 });
  });
  afterAll(async () => {
    client?.kill();
    await poller?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('the web module waits for the database: WAIT everywhere until croft prim db, then UP on n1, n2, n3', async () => {
    // No database yet (the mirror waits for `croft prim`): the db checker fails, nothing starts.
    await waitStates(lab, { n1: 'WAIT', n2: 'WAIT' }, 20_000, DB);
    await waitFor('shop WAIT on every node', async () => {
      for (const n of NODES) if ((await moduleView(lab, n, WEB))?.state !== 'WAIT') return false;
      return true;
    }, 20_000, 100);
    for (const n of NODES) {
      const r = await lab.exec(n, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '1', 'http://127.0.0.1:8000/health']);
      assert.notEqual(r.stdout, '200', `the order service is not started on ${n} while the database is away`);
    }
    const t0 = Date.now();
    assert.equal((await lab.exec('n1', ['croft', 'prim', DB])).code, 0);
    await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' }, 60_000, DB);
    await waitFor('shop UP on n1, n2, n3 (farm members)', () => webUp(lab, NODES), 60_000, 100);
    const r = await lab.exec('client', ['curl', '-s', '-m', '3', '--interface', lab.clientAddresses()[7]!, '-X', 'POST', `http://${WEB_VIP}:8000/order`]);
    assert.match(r.stdout, /^\{"id": \d+, "node": "n\d"\}$/m, `an order through the farm VIP: ${r.stdout}${r.stderr}`);
    console.log(`# 2-tier: croft prim db -> db PRIM/SECOND, shop UP on n1 n2 n3 and an order committed through ${WEB_VIP} after ${Date.now() - t0} ms (initdb included)`);
  });

  test('the order service refuses bad requests with a 4xx, stores hostile text as text, and keeps serving', async () => {
    const src = lab.clientAddresses()[11]!;
    const http = async (args: string[]) => {
      const r = await lab.exec('client', ['curl', '-s', '-m', '5', '--interface', src, '-w', '\n%{http_code}', ...args]);
      const i = r.stdout.lastIndexOf('\n');
      return { status: r.stdout.slice(i + 1), body: r.stdout.slice(0, i) };
    };
    const url = `http://${WEB_VIP}:8000`;
    const post = (data: string, headers: string[] = []) => http(['-X', 'POST', ...headers.flatMap((h) => ['-H', h]), '--data-binary', data, `${url}/order`]);
    assert.equal((await post('{"client": "x"', ['content-type: application/json'])).status, '400', 'not JSON');
    assert.equal((await post('[1, 2]')).status, '400', 'not an object');
    assert.equal((await post(JSON.stringify({ ref: 'r'.repeat(201) }))).status, '400', 'a field too long');
    assert.equal((await post(JSON.stringify({ ref: 5 }))).status, '400', 'a field not a string');
    assert.equal((await post('x'.repeat(5000))).status, '400', 'a body over 4096 bytes is not read');
    assert.equal((await post('{}', ['content-length: 1000000000'])).status, '400', 'a huge content-length is refused, not awaited');
    assert.equal((await http([`${url}/nope`])).status, '404');
    assert.equal((await http(['-X', 'DELETE', `${url}/order`])).status, '501');
    // SQL in a field is data (the statement is parameterised): stored as sent, the table intact.
    const evil = "x'); DROP TABLE orders; --";
    const ok = await post(JSON.stringify({ client: 'attacker', ref: evil }));
    assert.equal(ok.status, '201', ok.body);
    const id = (JSON.parse(ok.body) as { id: number }).id;
    const row = await lab.exec('n1', ['psql', '-X', '-At', '-h', `/run/croft/${DB}/sock`, '-U', 'postgres', '-d', 'croft', '-c', `select ref from orders where id = ${id}`]);
    assert.equal(row.stdout.trim(), evil);
    const count = await http([`${url}/orders/count`]);
    assert.equal(count.status, '200');
    assert.ok((JSON.parse(count.body) as { count: number }).count >= 2);
  });

  test('kill the database PRIM, crash a web node, kill the new PRIM: every acknowledged order is in the database', async () => {
    try {
      await failures();
    } catch (e) {
      // What the nodes that still answer say, for a person looking into the failure.
      for (const n of NODES) {
        const st = await lab.exec(n, ['croft', 'status'], { timeoutMs: 5_000 }).catch(() => null);
        console.log(`${n}: croft status:\n${st?.stdout ?? ''}${st?.stderr ?? ''}\nfarm: ${JSON.stringify(await farmStatus(lab, n, WEB))}`);
      }
      console.log(`web states seen: ${JSON.stringify([...poller?.seen ?? []])}`);
      throw e;
    }
  });

  async function failures(): Promise<void> {
    const sources = lab.clientAddresses();
    assert.equal(sources.length, 200);
    client = new OrderClient(lab, sources);
    poller = new StatePoller(lab, NODES);
    const c = client;
    const p = poller;
    await waitFor('orders acknowledged from every node', () => new Set(c.acks.map((a) => a.node)).size === 3 && c.acks.length >= 200, 20_000, 50);
    const say = (l: string) => console.log(l);

    // 1. lab kill of the database PRIM n1 (its web service dies with it): n2 ALONE, the web tier
    // on n2 and n3 waits for the database and comes back.
    const k1 = Date.now();
    await lab.kill('n1');
    await waitStates(lab, { n2: 'ALONE' }, 20_000, DB);
    await waitFor('shop UP on n2, n3', () => webUp(lab, ['n2', 'n3']), 30_000, 100);
    await waitFor('orders acknowledged after the kill', () => c.acksSince(k1) >= 100, 20_000, 50);
    const ud1 = waitedUp(p, ['n2', 'n3'], k1);
    await sleep(1_000);
    say(line('failure 1, lab kill n1 (db PRIM, and a web node)', cost(c, k1, Date.now()), `${WEB} on n2/n3 WAIT after ${ud1.wait} ms, UP again after ${ud1.up} ms`));

    // n1 back: SECOND after the reintegration, its web service UP. (The farm has 3 nodes and
    // needs a majority of them: n1 back first, so that the crash below leaves two.)
    let t = Date.now();
    await lab.start('n1');
    await waitStates(lab, { n1: 'SECOND', n2: 'PRIM' }, 60_000, DB);
    await waitFor('shop UP on n1, n2, n3', () => webUp(lab, NODES), 30_000, 100);
    say(`# 2-tier: n1 back -> db n1 SECOND (in sync), ${WEB} UP on n1 n2 n3 in ${Date.now() - t} ms`);

    // 2. lab crash of the web node n3 (links down, then its processes killed: no RST from it).
    await sleep(1_000);
    const c2 = Date.now();
    await lab.crash('n3');
    await waitFor('the farm is n1 n2', async () => JSON.stringify((await farmStatus(lab, 'n2', WEB))?.members) === '["n1","n2"]', 10_000, 50);
    const farm2 = Date.now() - c2;
    await sleep(3_000); // TCP retransmits an unanswered SYN after 1 s: let the ones in flight end
    say(line('failure 2, lab crash n3 (a web node)', cost(c, c2, Date.now()), `farm members n1 n2 (seen from n2) ${farm2} ms after the crash`));

    // n3 back, then 3. lab kill of n2, the new PRIM: n1 ALONE, the web tier on n1 and n3 waits
    // for the database and comes back.
    t = Date.now();
    await lab.start('n3');
    await waitFor('shop UP on n1, n2, n3', () => webUp(lab, NODES), 30_000, 100);
    say(`# 2-tier: n3 back -> ${WEB} UP on n1 n2 n3 in ${Date.now() - t} ms`);
    await sleep(1_000);
    const k3 = Date.now();
    await lab.kill('n2');
    await waitStates(lab, { n1: 'ALONE' }, 20_000, DB);
    await waitFor('shop UP on n1, n3', () => webUp(lab, ['n1', 'n3']), 30_000, 100);
    await waitFor('orders acknowledged after the second kill', () => c.acksSince(k3) >= 100, 20_000, 50);
    const ud3 = waitedUp(p, ['n1', 'n3'], k3);
    await sleep(1_000);
    await client.stop();
    await poller.stop();
    const f3 = cost(c, k3, Date.now());
    say(line('failure 3, lab kill n2 (the new db PRIM, and a web node)', f3, `${WEB} on n1/n3 WAIT after ${ud3.wait} ms, UP again after ${ud3.up} ms`));

    // The oracle: every order acknowledged to the client is in the database, with its reference,
    // read on the survivor n1 itself (the killed n2's kernel still holds the VIP and answers ARP
    // for it until its daemon starts again: a lab kill is not a power cut).
    assert.ok(await hasVip(lab, 'n1', DB_VIP), 'the database VIP is on n1');
    assert.equal((await mirrorStatus(lab, 'n1', DB))?.state, 'ALONE');
    const q = await lab.exec('n1', ['psql', '-X', '-At', '-F', ' ', '-v', 'ON_ERROR_STOP=1', '-h', `/run/croft/${DB}/sock`, '-U', 'postgres', '-d', 'croft',
      '-c', 'select id, ref from orders'], { timeoutMs: 30_000 });
    assert.equal(q.code, 0, q.stderr);
    const rows = new Map<number, string>();
    for (const l of q.stdout.split('\n').filter(Boolean)) {
      const [id, ref] = l.split(' ');
      rows.set(Number(id), ref!);
    }
    const ids = new Set(c.acks.map((a) => a.id));
    assert.equal(ids.size, c.acks.length, 'no id acknowledged twice');
    const missing = c.acks.filter((a) => rows.get(a.id) !== a.ref);
    const byNode = NODES.map((n) => `${n} ${c.acks.filter((a) => a.node === n).length}`).join(', ');
    say(`# 2-tier: ${c.acks.length} orders acknowledged from 200 source addresses (${byNode}), ${c.errors.length} failed; `
      + `${rows.size} rows in the database; acknowledged but missing: ${missing.length}`);
    assert.deepEqual(missing.slice(0, 10), [], 'every acknowledged order is in the database with its reference');
    assert.ok(f3.lastErr < 20_000, 'orders succeed again within seconds of a database failover');
  }
});
