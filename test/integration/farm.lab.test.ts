// The farm in a real lab: real daemons, Debian's nginx started by the nginx-farm module, the VIP
// answered by the native ARP responder, the kernel's nftables keeping each node's buckets.
// Figures (failover times, spread) are printed with a leading '#'.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { bucketOf } from '../../farm/hash-input.js';
import type { FarmMapView } from '../../top/cli/farm.js';
import { Lab } from '../../top/lab/index.js';
import { daemonLog, sleep, stats, waitFor } from '../helpers/cluster.js';
import { farmStatus } from '../helpers/farm-lab.js';
import { fixtures, repoRoot } from '../helpers/paths.js';

const VIP = '10.77.0.100';
const clientsScript = path.join(fixtures, 'farm-lab', 'clients.mjs');

interface ClientsResult { results: Record<string, string | null>; answeredAtMs: Record<string, number> }

async function clients(lab: Lab, opts: object): Promise<ClientsResult> {
  const r = await lab.exec('client', ['node', clientsScript, JSON.stringify({ url: `http://${VIP}/`, ...opts })], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ClientsResult;
}

/** Every node in `observers` runs the farm with exactly `members`. */
async function waitMembers(lab: Lab, observers: string[], members: string[], timeoutMs = 20_000): Promise<number> {
  return waitFor(`farm members [${members.join(' ')}] on ${observers.join(',')}`, async () => {
    const all = await Promise.all(observers.map((n) => farmStatus(lab, n)));
    return all.every((f) => f?.active && JSON.stringify(f.members) === JSON.stringify(members));
  }, timeoutMs, 50);
}

/** The shipped nginx-farm module, with a fixed seed: the lab's name (and so the derived seed) changes
 *  at every run, and a fixed seed makes the client -> bucket hashing, and the spread, reproducible. */
function farmConfig(patch: (yaml: string) => string = (y) => y): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-farmtest-'));
  const web = path.join(dir, 'modules', 'web');
  fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), web, { recursive: true });
  const file = path.join(web, 'module.yaml');
  const yaml = patch(fs.readFileSync(file, 'utf8')).replace(/^# seed: .*$/m, 'seed: 1');
  assert.match(yaml, /^seed: 1$/m);
  fs.writeFileSync(file, yaml);
  return dir;
}

async function farmMap(lab: Lab, from = 'n1'): Promise<FarmMapView> {
  const r = await lab.exec(from, ['croft', 'farm', 'map', 'web', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as FarmMapView;
}

/** Each client answered exactly by the node the map names; returns the count per node. */
function checkAnswers(map: FarmMapView, res: ClientsResult, sources: string[]): Record<string, number> {
  const per: Record<string, number> = {};
  for (const src of sources) {
    const body = res.results[src];
    assert.ok(body, `client ${src} got an answer`);
    const m = /^node (n\d+)$/.exec(body);
    assert.ok(m, `answer of ${src}: ${body}`);
    const expected = map.map[bucketOf(map.balance, map.buckets, map.seed, src)];
    assert.equal(m[1], expected, `client ${src} served by the owner of its bucket`);
    per[m[1]!] = (per[m[1]!] ?? 0) + 1;
  }
  return per;
}

describe('farm: 3 nginx nodes behind one VIP, 1000 clients', { timeout: 600_000 }, () => {
  let lab: Lab;
  let config: string;
  let sources: string[];
  beforeAll(async () => {
    config = farmConfig();
    // 1000 source addresses (the issue asks for 200 at least): the spread measured over them is then
    // the map's, not the noise of a small sample (±10 % for 200 clients at one third each).
    lab = await Lab.up({ name: `fa${process.pid % 100000}`, nodes: 3, clients: 1000, config, intervalMs: 100, timeoutMs: 500 });
    sources = lab.clientAddresses();
    assert.equal(sources.length, 1000);
  });
  afterAll(async () => {
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('every client gets one answer, from the node `croft farm who` names; spread 1:1:1 within ±25%', async () => {
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    const map = await farmMap(lab);
    assert.deepEqual(map.members.map((m) => m.name), ['n1', 'n2', 'n3']);
    const res = await clients(lab, { sources, mode: 'once' });
    const per = checkAnswers(map, res, sources);
    console.log(`# spread 1:1:1 over ${sources.length} clients: ${JSON.stringify(per)}; buckets ${JSON.stringify(map.load.map((l) => [l.node, l.buckets]))}`);
    for (const n of ['n1', 'n2', 'n3']) {
      const share = (per[n] ?? 0) / sources.length;
      assert.ok(Math.abs(share - 1 / 3) <= 0.25 / 3, `${n} serves ${(share * 100).toFixed(1)}% (expected 33.3% ± 8.3)`);
    }
    // `croft farm who` agrees with what the kernel did, client by client (a sample: it is a process each).
    for (const src of sources.filter((_, i) => i % 125 === 0)) {
      const r = await lab.exec('n2', ['croft', 'farm', 'who', 'web', src, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(`node ${JSON.parse(r.stdout).node}`, res.results[src], `farm who ${src}`);
    }
  });

  // Runs alternate `lab kill` (the node's kernel lives on and answers RST) and `lab crash` (its links
  // go down first: nothing leaves it, as a power cut); the victim goes round the three nodes.
  test('lab kill and lab crash of a node: 200 clients are all answered again within 1.5 s, then all 1000 by the new map (10 runs)', async () => {
    const runs: Record<'kill' | 'crash', number[]> = { kill: [], crash: [] };
    for (let i = 0; i < 10; i++) {
      const victim = ['n1', 'n2', 'n3'][i % 3]!;
      const how = i % 2 === 0 ? 'kill' : 'crash';
      const others = ['n1', 'n2', 'n3'].filter((n) => n !== victim);
      await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
      const t0 = Date.now();
      await (how === 'crash' ? lab.crash(victim) : lab.kill(victim));
      // 200 clients (every fifth source address): each retries with a fresh connection every
      // 100 ms until answered. With all 1000, the figure measures how fast one client process on a
      // 2-core machine gets through 1000 connections, more than the failover.
      const probe = sources.filter((_, j) => j % 5 === 0);
      const res = await clients(lab, { sources: probe, mode: 'until-all', timeoutMs: 100, deadlineMs: 10_000 });
      for (const src of probe) assert.ok(res.results[src], `client ${src} answered after lab ${how} of ${victim}`);
      const last = Math.max(...Object.values(res.answeredAtMs)) - t0;
      runs[how].push(last);
      // The survivors now serve every one of the 1000, by the new map.
      await waitMembers(lab, others, others);
      const after = await clients(lab, { sources, mode: 'once' });
      checkAnswers(await farmMap(lab, others[0]), after, sources);
      await lab.start(victim);
    }
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    for (const how of ['kill', 'crash'] as const) {
      const s = stats(runs[how]);
      console.log(`# farm failover, lab ${how} -> every client answered (ms, ${runs[how].length} runs): ${runs[how].join(' ')}; min ${s.min} median ${s.median} max ${s.max}`);
      assert.ok(s.max <= 1500, `all within 1.5 s after lab ${how}: ${runs[how].join(', ')}`);
    }
  });

  test('120 long-lived connections: a node leaving and joining resets or stalls none on the other nodes', async () => {
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    const map = await farmMap(lab);
    const held = sources.slice(0, 120);
    const child = lab.spawn('client', ['node', path.join(fixtures, 'farm-lab', 'long.mjs'),
      JSON.stringify({ host: VIP, port: 80, sources: held, everyMs: 100, durationMs: 9_000 })]);
    let out = '';
    child.stdout?.on('data', (c: Buffer) => { out += c.toString(); });
    const done = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
    await sleep(1_500);
    // n3 leaves: its buckets move to n1 and n2.
    assert.equal((await lab.exec('n3', ['croft', 'stop', 'web'])).code, 0);
    await waitMembers(lab, ['n1', 'n2'], ['n1', 'n2']);
    // Stopped, n3 holds nothing croft added: no table, no VIP.
    await waitFor('n3 removed its tables and VIP', async () => {
      const tables = (await lab.exec('n3', ['nft', 'list', 'tables'])).stdout;
      const addrs = (await lab.exec('n3', ['ip', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout;
      return !/croft_/.test(tables) && !addrs.includes(VIP);
    }, 5_000);
    // New connections of n3's clients go to their new owners.
    const moved = held.filter((s) => map.map[bucketOf(map.balance, map.buckets, map.seed, s)] === 'n3').slice(0, 10);
    const mapLeft = await farmMap(lab);
    checkAnswers(mapLeft, await clients(lab, { sources: moved, mode: 'once' }), moved);
    await sleep(1_500);
    // n3 joins again: buckets move back from n1 and n2 to n3, under live connections.
    assert.equal((await lab.exec('n3', ['croft', 'start', 'web'])).code, 0);
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    checkAnswers(await farmMap(lab), await clients(lab, { sources: moved, mode: 'once' }), moved);
    assert.equal(await done, 0);
    const r = JSON.parse(out) as { conns: { src: string; node: string | null; replies: number; error: string | null; maxGapMs: number }[] };
    const survivors = r.conns.filter((c) => c.node !== 'n3');
    console.log(`# long-lived: ${r.conns.length} connections, ${survivors.length} on n1/n2; errors on n1/n2: ${survivors.filter((c) => c.error).length}; max gap ${Math.max(...survivors.map((c) => c.maxGapMs))} ms`);
    assert.ok(survivors.length >= 60, 'enough connections on the surviving nodes');
    for (const c of survivors) {
      assert.equal(c.error, null, `connection from ${c.src} to ${c.node} kept: ${c.error}`);
      assert.ok(c.maxGapMs < 1_000, `connection from ${c.src} to ${c.node} never stalled (max gap ${c.maxGapMs} ms)`);
      assert.ok(c.replies >= 60, `connection from ${c.src} kept answering (${c.replies} replies)`);
    }
  });

  test('a 2|1 partition: the two serve every client, the lone node none (quorum); healing brings back three', async () => {
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    await lab.partition([['n1', 'n2']]);
    try {
      await waitMembers(lab, ['n1', 'n2'], ['n1', 'n2'], 5_000);
      await waitFor('n3 without quorum serves no bucket', async () => {
        const f = await farmStatus(lab, 'n3');
        return f?.active === true && f.members.length === 0 && f.ownedBuckets === 0;
      }, 5_000);
      // The client still reaches all three: each client is answered once, by the majority's map.
      const res = await clients(lab, { sources, mode: 'once' });
      const per = checkAnswers(await farmMap(lab, 'n1'), res, sources);
      assert.equal(per.n3 ?? 0, 0);
    } finally {
      await lab.partition([]);
    }
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    checkAnswers(await farmMap(lab), await clients(lab, { sources, mode: 'once' }), sources);
  });

  test('forged heartbeats (wrong key) saying n2 stopped web change no farm map', async () => {
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    const before = await Promise.all(['n1', 'n3'].map((n) => farmStatus(lab, n)));
    const sender = path.join(fixtures, 'membership', 'send.mjs');
    const codec = path.join(repoRoot, 'dist', 'src', 'membership', 'codec.js');
    const hb = { cluster: lab.name, from: 'n2', lan: 0, incarnation: Date.now() + 1e9, seq: 1,
      view: { epoch: 99, members: ['n2'] }, modules: { web: { state: 'STOP', sinceMs: 0 } } };
    for (const n of ['n1', 'n3']) {
      const r = await lab.exec('client', ['node', sender, JSON.stringify({ codec, host: lab.nodeAddress(n), port: 4800, mode: 'forged', count: 300, hb })]);
      assert.equal(r.code, 0, r.stderr);
    }
    await sleep(500);
    const after = await Promise.all(['n1', 'n3'].map((n) => farmStatus(lab, n)));
    assert.deepEqual(after.map((f) => f?.members), [['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']]);
    assert.deepEqual(after.map((f) => f?.ownedBuckets), before.map((f) => f?.ownedBuckets));
  });

  test('a table deleted behind croft\'s back is put back by the periodic reconcile', async () => {
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    assert.equal((await lab.exec('n1', ['nft', 'delete', 'table', 'ip', 'croft_web'])).code, 0);
    await waitFor('croft_web back on n1', async () => /table ip croft_web/.test((await lab.exec('n1', ['nft', 'list', 'tables'])).stdout), 15_000, 250);
    await waitFor('n1 owns its buckets again', async () => {
      const set = (await lab.exec('n1', ['nft', '-j', 'list', 'set', 'ip', 'croft_web', 'owned'])).stdout;
      return (set.match(/"val"/g) ?? []).length === (await farmStatus(lab, 'n1'))?.ownedBuckets;
    }, 5_000, 100);
    checkAnswers(await farmMap(lab), await clients(lab, { sources, mode: 'once' }), sources);
  });

  test('stopping nginx on a node: the node leaves the farm, nginx is restarted, the node rejoins', async () => {
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    const t0 = Date.now();
    const pid = (await lab.exec('n2', ['cat', '/run/croft/web/nginx.pid'])).stdout.trim();
    assert.match(pid, /^\d+$/, 'nginx pid of n2');
    // nginx stops behind croft's back (SIGTERM: the master takes its workers down with it).
    assert.equal((await lab.exec('n2', ['kill', '-TERM', pid])).code, 0);
    // The checker fails, n2 leaves UP (its buckets go to n1 and n3), nginx is restarted, n2 rejoins.
    await waitFor('n2 restarted web after its checker failed', () => daemonLog(lab, 'n2').some((l) =>
      Date.parse(l.time) >= t0 && l.event === 'module_state' && l.from === 'WAIT' && l.to === 'UP' && /checker http failed/.test(String(l.cause))), 20_000);
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3'], 20_000);
    const left = (node: string) => daemonLog(lab, node).some((l) => Date.parse(l.time) >= t0 && l.event === 'farm_buckets'
      && JSON.stringify(l.members) === JSON.stringify(['n1', 'n3']));
    assert.ok(left('n1') && left('n3'), 'n1 and n3 ran the farm without n2 in between');
    const res = await clients(lab, { sources, mode: 'once' });
    checkAnswers(await farmMap(lab), res, sources);
  });
});

describe('farm: weights 1:2:1', { timeout: 120_000 }, () => {
  let lab: Lab;
  let config: string;
  beforeAll(async () => {
    config = farmConfig((y) => y.replace('# weights: { n1: 1, n2: 2 }', 'weights: { n2: 2 }'));
    assert.match(fs.readFileSync(path.join(config, 'modules', 'web', 'module.yaml'), 'utf8'), /^weights: \{ n2: 2 \}/m);
    lab = await Lab.up({ name: `fw${process.pid % 100000}`, nodes: 3, clients: 1000, config, intervalMs: 100, timeoutMs: 500 });
  });
  afterAll(async () => {
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('the spread follows the weights within ±25%', async () => {
    await waitMembers(lab, ['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']);
    const sources = lab.clientAddresses();
    const map = await farmMap(lab);
    const per = checkAnswers(map, await clients(lab, { sources, mode: 'once' }), sources);
    console.log(`# spread 1:2:1 over ${sources.length} clients: ${JSON.stringify(per)}; buckets ${JSON.stringify(map.load.map((l) => [l.node, l.buckets]))}`);
    for (const [n, want] of [['n1', 0.25], ['n2', 0.5], ['n3', 0.25]] as const) {
      const share = (per[n] ?? 0) / sources.length;
      assert.ok(Math.abs(share - want) <= 0.25 * want, `${n} serves ${(share * 100).toFixed(1)}% (expected ${want * 100}% ± 25%)`);
    }
  });
});
