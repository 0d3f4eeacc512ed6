// Cloud mode of the farm (`vip: none`) in a real lab: no VIP, no ARP responder, no nftables filter;
// each node's /health/<module> tells a provider's load balancer whether this node takes new flows.
// The client namespace plays the provider's health checker (plain HTTP to each node's own address,
// port 9450, no token). Figures are printed with a leading '#'.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { Lab } from '../../top/lab/index.js';
import { daemonLog, sleep, waitFor, type LogLine } from '../helpers/cluster.js';
import { repoRoot } from '../helpers/paths.js';

const NODES = ['n1', 'n2', 'n3'];
const API_PORT = 9450; // the lab's generated cluster.yaml: api on 0.0.0.0:9450
const POLL_MS = 50;

/** modules/nginx-farm with `vip: none` and the keys that mean nothing without a VIP removed. */
function cloudConfig(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-farmcloud-'));
  const web = path.join(dir, 'modules', 'web');
  fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), web, { recursive: true });
  const file = path.join(web, 'module.yaml');
  const shipped = fs.readFileSync(file, 'utf8');
  const yaml = shipped
    .replace(/^vip: 10\.77\.0\.100\b.*$/m, 'vip: none')
    // `croft check` refuses interface, mac_mode and virtual_mac with vip: none (they would do nothing).
    .replace(/^(interface|mac_mode|virtual_mac):.*\n(^ +#.*\n)*/gm, '');
  assert.notEqual(yaml, shipped);
  assert.match(yaml, /^vip: none$/m);
  assert.doesNotMatch(yaml, /^(interface|mac_mode|virtual_mac):/m);
  fs.writeFileSync(file, yaml);
  return dir;
}

/** One poll result as the poller prints it: a change of answer for one node. */
interface Change { node: string; atMs: number; code: number | string }

/**
 * A health checker in the client namespace: GET /health/web on every node every POLL_MS (a fresh
 * connection each time, as a provider's checker does), printing one JSON line per change of answer.
 * Node rather than curl in a loop: a process per probe costs more than the 50 ms between probes.
 */
const pollerSource = `
import http from 'node:http';
const [nodes, port, everyMs] = JSON.parse(process.argv[1]);
const last = {}; const busy = {};
const probe = (node, addr) => {
  if (busy[node]) return; busy[node] = true;
  const done = (code) => {
    busy[node] = false;
    if (last[node] !== code) { last[node] = code; console.log(JSON.stringify({ node, atMs: Date.now(), code })); }
  };
  const req = http.get({ host: addr, port, path: '/health/web', agent: false, timeout: 300 }, (res) => { res.resume(); res.on('end', () => done(res.statusCode)); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => done(e.message === 'timeout' ? 'timeout' : 'error'));
};
setInterval(() => { for (const [node, addr] of nodes) probe(node, addr); }, everyMs);
`;

class Poller {
  readonly changes: Change[] = [];
  private child: ChildProcess;
  private buf = '';
  constructor(lab: Lab) {
    const targets = NODES.map((n) => [n, lab.nodeAddress(n)]);
    this.child = lab.spawn('client', ['node', '--input-type=module', '-e', pollerSource, JSON.stringify([targets, API_PORT, POLL_MS])],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout?.on('data', (c: Buffer) => {
      this.buf += c.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (line.startsWith('{')) this.changes.push(JSON.parse(line) as Change);
      }
    });
  }
  /** The answer of `node` as last seen. */
  current(node: string): number | string | undefined {
    return this.changes.filter((c) => c.node === node).at(-1)?.code;
  }
  /** Changes of `node` at or after `sinceMs`. */
  since(node: string, sinceMs: number): Change[] {
    return this.changes.filter((c) => c.node === node && c.atMs >= sinceMs);
  }
  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/** GET from the client namespace with curl, as a provider's checker would: status code and body
 *  (its last newline trimmed); null when nothing answered (connection refused, timeout). */
async function tryCurl(lab: Lab, url: string): Promise<{ code: number; body: string } | null> {
  const r = await lab.exec('client', ['curl', '-sS', '-m', '2', '-w', '\n%{http_code}', url]);
  if (r.code !== 0) return null;
  const i = r.stdout.lastIndexOf('\n');
  return { code: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i).replace(/\n$/, '') };
}

async function curl(lab: Lab, url: string): Promise<{ code: number; body: string }> {
  const r = await tryCurl(lab, url);
  assert.ok(r, `curl ${url} got an answer`);
  return r;
}

const stateChanges = (lab: Lab, node: string, sinceMs: number): LogLine[] =>
  daemonLog(lab, node).filter((l) => l.event === 'module_state' && l.module === 'web' && Date.parse(l.time) >= sinceMs);

describe('farm cloud mode (vip: none): /health/web guides the provider\'s load balancer', { timeout: 300_000 }, () => {
  let lab: Lab;
  let config: string;
  let poller: Poller | undefined;

  beforeAll(async () => {
    config = cloudConfig();
    lab = await Lab.up({ name: `fc${process.pid % 100000}`, nodes: 3, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
  });
  afterAll(async () => {
    poller?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('croft check accepts the module and the daemon reads it as cloud mode', async () => {
    const r = await lab.exec('n1', ['croft', 'check', '/etc/croft']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const web = loadConfig(lab.configDir).modules.find((m) => m.name === 'web');
    assert.equal(web?.kind, 'farm');
    assert.equal(web?.farm?.vip, null);
    // The shipped modules/nginx-farm-cloud (module.yaml, scripts linked from nginx-farm) passes too,
    // copied the way docs/cloud.md says (links followed).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-farmcloud-shipped-'));
    try {
      fs.copyFileSync(path.join(lab.configDir, 'cluster.yaml'), path.join(dir, 'cluster.yaml'));
      fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm-cloud'), path.join(dir, 'modules', 'web'), { recursive: true, dereference: true });
      const shipped = loadConfig(dir).modules.find((m) => m.name === 'web');
      assert.equal(shipped?.farm?.vip, null);
      assert.deepEqual(shipped?.checkers, web?.checkers, 'same checker as nginx-farm');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('every node answers 200 on /health/web; no nft table, no extra address; nginx on each node\'s own address', async () => {
    await waitFor('web UP on every node: /health/web 200 from the client', async () =>
      (await Promise.all(NODES.map((n) => tryCurl(lab, `http://${lab.nodeAddress(n)}:${API_PORT}/health/web`)))).every((r) => r?.code === 200), 30_000, 100);
    for (const n of NODES) {
      const health = await curl(lab, `http://${lab.nodeAddress(n)}:${API_PORT}/health/web`);
      assert.equal(health.code, 200);
      assert.deepEqual(JSON.parse(health.body), { module: 'web', node: n, state: 'UP', ready: true });
      const ready = await curl(lab, `http://${lab.nodeAddress(n)}:${API_PORT}/var/modules/web/ready.txt`);
      assert.deepEqual(ready, { code: 200, body: 'ready' });
      // /api/v1 is not open to the health checker: it needs the token.
      assert.equal((await curl(lab, `http://${lab.nodeAddress(n)}:${API_PORT}/api/v1/status`)).code, 401);

      // No filter: croft made no nftables table (a VIP farm has croft_web in several families).
      const tables = await lab.exec(n, ['nft', 'list', 'tables']);
      assert.equal(tables.code, 0, tables.stderr);
      assert.doesNotMatch(tables.stdout, /croft/, `${n} has no croft table: ${tables.stdout}`);
      // No VIP: eth0 has the node's own address only, and no other interface has an IPv4 address but lo.
      const eth0 = await lab.exec(n, ['ip', '-4', '-o', 'addr', 'show', 'eth0']);
      assert.deepEqual([...eth0.stdout.matchAll(/inet (\S+)/g)].map((m) => m[1]), [`${lab.nodeAddress(n)}/16`]);
      const all = await lab.exec(n, ['ip', '-4', '-o', 'addr', 'show']);
      assert.deepEqual([...all.stdout.matchAll(/inet (\S+)/g)].map((m) => m[1]).sort(), [`${lab.nodeAddress(n)}/16`, '127.0.0.1/8']);
      // The daemon runs no farm data plane for the module (no VIP, ARP responder or buckets logged).
      assert.ok(!daemonLog(lab, n).some((l) => typeof l.event === 'string' && l.event.startsWith('farm_')), `${n} logged no farm_* event`);

      // The provider's load balancer sends flows to each node's own address: nginx answers there.
      assert.deepEqual(await curl(lab, `http://${lab.nodeAddress(n)}/`), { code: 200, body: `node ${n}` });
    }
  });

  test('croft stop on n2: its /health turns 503 within 1 s, n1 and n3 stay 200; start: 200 again', async () => {
    poller = new Poller(lab);
    await waitFor('the poller sees 200 on every node', () => NODES.every((n) => poller!.current(n) === 200), 10_000, 20);
    const t0 = Date.now();
    const stop = await lab.exec('n2', ['croft', 'stop', 'web']);
    const cliMs = Date.now() - t0;
    assert.equal(stop.code, 0, stop.stderr);
    await waitFor('n2 answers 503', () => poller!.current('n2') === 503, 5_000, 10);
    const first503 = poller.since('n2', t0).find((c) => c.code === 503)!;
    const after503Ms = first503.atMs - t0;
    // From the daemon's own log: when n2 left UP (the command received and acted on).
    const leftUp = stateChanges(lab, 'n2', t0).find((l) => l.from === 'UP');
    assert.ok(leftUp, 'n2 logged leaving UP');
    const fromLogMs = first503.atMs - Date.parse(leftUp.time);
    console.log(`# cloud mode: croft stop web on n2 -> /health/web 503 seen by the checker ${fromLogMs} ms after the daemon logged `
      + `UP -> ${leftUp.to}, ${after503Ms} ms after the command was typed (the croft CLI, a node process, took ${cliMs} ms; probe every ${POLL_MS} ms)`);
    // The daemon's part: from acting on the stop to the checker's first 503. The CLI's own start-up
    // (0.4 s idle, over 1 s on a loaded machine) is not part of it, so the bound on the whole is
    // taken from the moment `croft stop` returned: the 503 is there by then or within 1 s.
    assert.ok(fromLogMs <= 1_000, `503 within 1 s of the daemon leaving UP (${fromLogMs} ms)`);
    assert.ok(first503.atMs - (t0 + cliMs) <= 1_000, `503 within 1 s of croft stop returning (${first503.atMs - t0 - cliMs} ms)`);

    const ready = await curl(lab, `http://${lab.nodeAddress('n2')}:${API_PORT}/var/modules/web/ready.txt`);
    assert.deepEqual(ready, { code: 503, body: 'not_ready' });
    await waitFor('n2 reaches STOP', () => stateChanges(lab, 'n2', t0).some((l) => l.to === 'STOP'), 20_000);
    assert.equal(JSON.parse((await curl(lab, `http://${lab.nodeAddress('n2')}:${API_PORT}/health/web`)).body).state, 'STOP');
    await sleep(500); // some more probes while n2 is stopped

    const t1 = Date.now();
    assert.equal((await lab.exec('n2', ['croft', 'start', 'web'])).code, 0);
    const backMs = await waitFor('n2 answers 200 again', () => poller!.current('n2') === 200, 20_000, 10);
    const t2 = Date.now();
    console.log(`# cloud mode: croft start web on n2 -> /health/web 200 again after ${t2 - t1} ms (${backMs} ms after the CLI returned)`);
    assert.deepEqual(await curl(lab, `http://${lab.nodeAddress('n2')}/`), { code: 200, body: 'node n2' });
    // n2 never answered 200 between the 503 and the restart's end, and n1, n3 answered 200 throughout.
    assert.ok(poller.since('n2', first503.atMs).filter((c) => c.atMs < t1).every((c) => c.code === 503), 'n2 stayed 503 while stopped');
    for (const n of ['n1', 'n3']) {
      assert.deepEqual(poller.since(n, t0), [], `${n} stayed 200 (changes: ${JSON.stringify(poller.since(n, t0))})`);
      assert.equal(poller.current(n), 200);
    }
  });

  test('nginx killed on n3 behind croft\'s back: /health 503 while croft restarts it, then 200', async () => {
    assert.ok(poller, 'poller started by the previous test');
    await waitFor('200 on every node', () => NODES.every((n) => poller!.current(n) === 200), 10_000, 20);
    const t0 = Date.now();
    const kill = await lab.exec('n3', ['sh', '-c', 'kill -TERM "$(cat /run/croft/web/nginx.pid)"']);
    assert.equal(kill.code, 0, kill.stderr);
    // The checker fails (fall 2 x 500 ms), n3 leaves UP, stop_both and start_both run, n3 is UP again.
    await waitFor('n3 restarted web after its checker failed', () => stateChanges(lab, 'n3', t0).some((l) =>
      l.from === 'WAIT' && l.to === 'UP' && /checker http failed/.test(String(l.cause))), 20_000);
    await waitFor('n3 answers 200 on /health again', () => poller!.current('n3') === 200, 5_000, 10);
    const log = stateChanges(lab, 'n3', t0);
    const leftUp = log.find((l) => l.from === 'UP');
    const backUp = log.find((l) => l.to === 'UP');
    assert.ok(leftUp && backUp, `n3 logged leaving UP and coming back: ${JSON.stringify(log)}`);
    assert.match(String(leftUp.cause), /checker http failed/);
    const notUpMs = Date.parse(backUp.time) - Date.parse(leftUp.time);
    const seen = poller.since('n3', t0);
    const first503 = seen.find((c) => c.code === 503);
    const back200 = first503 && seen.find((c) => c.atMs > first503.atMs && c.code === 200);
    console.log(`# cloud mode: nginx killed on n3 -> daemon left UP after ${Date.parse(leftUp.time) - t0} ms, not UP for ${notUpMs} ms; `
      + (first503 && back200
        ? `checker saw 503 from ${first503.atMs - t0} ms to ${back200.atMs - t0} ms after the kill`
        : `checker (every ${POLL_MS} ms) missed the 503: ${JSON.stringify(seen)}`));
    // The 503 window is the daemon's time out of UP. A probe every 50 ms cannot miss a window of 150 ms
    // or more; a shorter one (a quick restart) is proven by the log alone.
    if (notUpMs >= 3 * POLL_MS) assert.ok(first503 && back200, `the checker saw n3 turn 503 then 200: ${JSON.stringify(seen)}`);
    assert.ok(seen.every((c) => c.code === 200 || c.code === 503), `n3's /health only ever answered 200 or 503: ${JSON.stringify(seen)}`);
    assert.deepEqual(await curl(lab, `http://${lab.nodeAddress('n3')}/`), { code: 200, body: 'node n3' });
    for (const n of ['n1', 'n2']) assert.deepEqual(poller.since(n, t0), [], `${n} stayed 200`);
  });
});
