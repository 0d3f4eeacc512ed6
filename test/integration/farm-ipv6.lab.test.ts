// IPv6 and several VIPs in a real lab (issue 11, part 5): one nginx-farm module with an IPv4 and
// an IPv6 VIP on 3 nodes, 200 IPv4 and 200 IPv6 client addresses (unique local, inside the lab's
// namespaces). The IPv6 VIP is answered in neighbour discovery by the native responder with the
// virtual MAC, the kernel's own advertisements for it are dropped and its solicitations rewritten,
// and the ip6 table keeps each node's buckets with the same hash as `croft farm who`. Failover and
// keep-alive clients are checked as for IPv4 (farm.lab, farm-crash.lab). Figures on '#' lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { bucketOf } from '../../farm/hash-input.js';
import type { FarmMapView } from '../../top/cli/farm.js';
import { Lab } from '../../top/lab/index.js';
import { daemonLog, sleep, stats, waitFor } from '../helpers/cluster.js';
import { farmStatus, Holders, moduleView } from '../helpers/farm-lab.js';
import { fixtures, repoRoot } from '../helpers/paths.js';

const VIP4 = '10.77.0.100';
const VIP6 = 'fd00:77::100';
const NODES = ['n1', 'n2', 'n3'];
const DRAIN_MS = 2_000;

interface ClientsResult { results: Record<string, string | null>; answeredAtMs: Record<string, number> }

function url(vip: string): string {
  return vip.includes(':') ? `http://[${vip}]/` : `http://${vip}/`;
}

async function clients(lab: Lab, vip: string, opts: object): Promise<ClientsResult> {
  const r = await lab.exec('client', ['node', path.join(fixtures, 'farm-lab', 'clients.mjs'), JSON.stringify({ url: url(vip), ...opts })],
    { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ClientsResult;
}

async function waitMembers(lab: Lab, observers: string[], members: string[], timeoutMs = 20_000): Promise<number> {
  return waitFor(`farm members [${members.join(' ')}] on ${observers.join(',')}`, async () => {
    const all = await Promise.all(observers.map((n) => farmStatus(lab, n)));
    return all.every((f) => f?.active && JSON.stringify(f.members) === JSON.stringify(members));
  }, timeoutMs, 50);
}

async function farmMap(lab: Lab, from: string): Promise<FarmMapView> {
  const r = await lab.exec(from, ['croft', 'farm', 'map', 'web', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as FarmMapView;
}

/** Each source answered exactly once, by the node the map names for it; the count per node. */
function checkAnswers(map: FarmMapView, res: ClientsResult, sources: string[]): Record<string, number> {
  const per: Record<string, number> = {};
  for (const src of sources) {
    const body = res.results[src];
    const m = /^node (n\d+)$/.exec(body ?? '');
    assert.ok(m, `client ${src} answered by a node: ${body}`);
    assert.equal(m[1], map.map[bucketOf(map.balance, map.buckets, map.seed, src)], `client ${src} served by the owner of its bucket`);
    per[m[1]!] = (per[m[1]!] ?? 0) + 1;
  }
  return per;
}

/** Wall-clock ms of the first farm_buckets line at or after sinceMs on `node` with these members. */
function bucketsAt(lab: Lab, node: string, sinceMs: number, members: string[]): { at: number; takeover: number } | null {
  for (const l of daemonLog(lab, node)) {
    const t = Date.parse(l.time);
    if (t >= sinceMs && l.event === 'farm_buckets' && JSON.stringify(l.members) === JSON.stringify(members)) {
      return { at: t, takeover: Number(l.takeover ?? 0) };
    }
  }
  return null;
}

/** The client's neighbour entry for an address: its MAC, or undefined. */
async function clientNeighbour(lab: Lab, ip: string): Promise<string | undefined> {
  const r = await lab.exec('client', ['ip', '-j', 'neigh', 'show', ip, 'dev', 'eth0']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout || '[]') as Array<{ lladdr?: string }>)[0]?.lladdr;
}

describe('farm over IPv6: one module with an IPv4 and an IPv6 VIP, 200 clients of each', { timeout: 180_000 }, () => {
  let lab: Lab;
  let config: string;
  let sources4: string[];
  let sources6: string[];
  const holders: Holders[] = [];
  beforeAll(async () => {
    // The shipped nginx-farm module with both VIPs and a fixed seed (the lab's name, and so the
    // derived seed, changes at every run).
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-farm6-'));
    const web = path.join(config, 'modules', 'web');
    fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), web, { recursive: true });
    const file = path.join(web, 'module.yaml');
    const yaml = fs.readFileSync(file, 'utf8').replace(/^# seed: .*$/m, 'seed: 1').replace(/^vip: 10\.77\.0\.100 /m, `vip: [${VIP4}, "${VIP6}"] `)
      .replace(/^# drain_ms: .*$/m, `drain_ms: ${DRAIN_MS}`);
    assert.match(yaml, /^seed: 1$/m);
    assert.match(yaml, /^drain_ms: 2000$/m);
    assert.match(yaml, /^vip: \[10\.77\.0\.100, "fd00:77::100"\]/m);
    fs.writeFileSync(file, yaml);
    lab = await Lab.up({ name: `f6${process.pid % 100000}`, nodes: 3, clients: 200, ipv6: true, config, intervalMs: 100, timeoutMs: 500 });
    sources4 = lab.clientAddresses();
    sources6 = lab.clientAddresses6();
    assert.equal(sources6.length, 200);
    assert.ok(sources6.every((s) => s.startsWith('fd00:')), 'unique local addresses only');
  });
  afterAll(async () => {
    for (const h of holders) h.kill();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('200 IPv6 clients each served once by the node `croft farm who` names; the IPv4 VIP of the same module too', async () => {
    await waitMembers(lab, NODES, NODES);
    const map = await farmMap(lab, 'n1');
    const res6 = await clients(lab, VIP6, { sources: sources6, mode: 'once' });
    const per6 = checkAnswers(map, res6, sources6);
    const res4 = await clients(lab, VIP4, { sources: sources4, mode: 'once' });
    const per4 = checkAnswers(map, res4, sources4);
    console.log(`# IPv6 VIP ${VIP6}: ${sources6.length} clients, each answered once by its bucket's owner: ${JSON.stringify(per6)};`
      + ` IPv4 VIP ${VIP4} of the same module: ${JSON.stringify(per4)}`);
    for (const n of NODES) assert.ok((per6[n] ?? 0) > 0, `${n} serves IPv6 clients`);
    // `croft farm who` on an IPv6 client names the node that answered it (every 20th: a process each).
    for (const src of sources6.filter((_, i) => i % 20 === 0)) {
      const r = await lab.exec('n2', ['croft', 'farm', 'who', 'web', src, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(`node ${(JSON.parse(r.stdout) as { node: string }).node}`, res6.results[src], `farm who ${src}`);
    }
    // Every node holds both VIPs; the client (the router in front) knows the IPv6 VIP by the virtual
    // MAC: no node's own MAC leaked through a solicitation or an advertisement of its kernel.
    const vmac = daemonLog(lab, 'n1').find((l) => l.event === 'farm_start')?.mac;
    assert.ok(typeof vmac === 'string' && /^02(:[0-9a-f]{2}){5}$/.test(vmac), `the virtual MAC of the module: ${String(vmac)}`);
    for (const n of NODES) {
      const addrs = (await lab.exec(n, ['ip', 'addr', 'show', 'dev', 'eth0'])).stdout;
      assert.ok(addrs.includes(`${VIP4}/32`) && addrs.includes(`${VIP6}/128`), `${n} holds both VIPs:\n${addrs}`);
    }
    assert.equal(await clientNeighbour(lab, VIP6), vmac, 'the client resolves the IPv6 VIP to the virtual MAC');
    assert.equal(await clientNeighbour(lab, VIP4), vmac, 'and the IPv4 VIP');
    // A neighbour probe from the nodes (the client's entry expires, a node resolves it again from
    // the VIP): force it by flushing every node's neighbour entries and the client's.
    for (const n of NODES) await lab.exec(n, ['ip', '-6', 'neigh', 'flush', 'dev', 'eth0']);
    await lab.exec('client', ['ip', '-6', 'neigh', 'flush', 'dev', 'eth0']);
    checkAnswers(map, await clients(lab, VIP6, { sources: sources6.slice(0, 30), mode: 'once' }), sources6.slice(0, 30));
    assert.equal(await clientNeighbour(lab, VIP6), vmac, 'still the virtual MAC after the nodes resolved the client again');
  });

  test('lab crash of a node: its IPv6 keep-alive clients get a RST (or an answer) within 1 s of the failover, the others nothing', async () => {
    const victim = 'n3';
    const others = NODES.filter((n) => n !== victim);
    await waitMembers(lab, NODES, NODES);
    const h = new Holders(lab, VIP6, sources6);
    holders.push(h);
    await h.ready();
    await sleep(500);
    const t0 = Date.now();
    await lab.crash(victim);
    await waitMembers(lab, others, others, 10_000);
    const taken = others.map((n) => bucketsAt(lab, n, t0, others));
    for (const [i, t] of taken.entries()) assert.ok(t && t.takeover > 0, `${others[i]} took buckets over from ${victim}: ${JSON.stringify(t)}`);
    const failover = Math.max(...taken.map((t) => t!.at));
    // TCP retransmits an unanswered request after 200, 400, 800 ms...: wait for the ones in flight.
    await sleep(Math.max(0, failover + 2_500 - Date.now()));
    const conns = await h.stop();
    const victims = conns.filter((c) => c.answers[0]?.node === victim);
    const rest = conns.filter((c) => c.answers[0]?.node !== victim);
    assert.ok(victims.length >= 30, `${victim} served ${victims.length} of the ${conns.length} clients`);
    const told: number[] = [];
    let resets = 0;
    for (const c of victims) {
      const ev = c.events.find((e) => e.at >= t0);
      const other = c.answers.find((a) => a.at >= t0 && a.node !== victim);
      const at = Math.min(ev?.at ?? Infinity, other?.at ?? Infinity);
      assert.ok(at < Infinity, `client ${c.src} of ${victim} was told nothing: ${JSON.stringify(c)}`);
      if (ev && ev.at === at) {
        assert.equal(ev.what, 'reset', `client ${c.src}: its connection ended by a RST, not ${ev.what}`);
        resets++;
      }
      told.push(at - failover);
    }
    const s = stats(told);
    const errors = rest.filter((c) => c.events.length > 0);
    console.log(`# IPv6, crash of ${victim}: ${conns.length} keep-alive clients, ${victims.length} on ${victim}; crash -> failover ${failover - t0} ms;`
      + ` its clients told (${resets} RST, ${victims.length - resets} answered by another node) failover + min ${s.min} / median ${s.median} / max ${s.max} ms;`
      + ` errors on ${others.join('/')}: ${errors.length} of ${rest.length}`);
    assert.ok(s.max <= 1_000, `every client of ${victim} told within 1 s of the failover (max ${s.max} ms)`);
    assert.deepEqual(errors.map((c) => `${c.src}: ${JSON.stringify(c.events)}`), []);
    for (const c of victims) assert.ok(c.answers.some((a) => a.at >= t0 && others.includes(a.node)), `client ${c.src} answered again`);
    // New IPv6 clients, every source: served by the survivors' map.
    checkAnswers(await farmMap(lab, 'n1'), await clients(lab, VIP6, { sources: sources6, mode: 'once' }), sources6);
    await lab.start(victim);
    await waitMembers(lab, NODES, NODES, 30_000);
    for (const n of others) {
      await waitFor(`${n} has no takeover bucket left`, async () => (await farmStatus(lab, n))?.takeoverBuckets === 0, 5_000);
      for (const family of ['ip', 'ip6']) {
        const set = (await lab.exec(n, ['nft', '-j', 'list', 'set', family, 'croft_web', 'takeover'])).stdout;
        assert.doesNotMatch(set, /"elem"/, `${n}'s ${family} takeover set is empty`);
      }
    }
  });

  test('croft stop with a drain, then croft start: no IPv6 keep-alive connection reset anywhere', async () => {
    const node = 'n1';
    const others = NODES.filter((n) => n !== node);
    await waitMembers(lab, NODES, NODES, 30_000);
    const h = new Holders(lab, VIP6, sources6);
    holders.push(h);
    await h.ready();
    await sleep(500);
    const t0 = Date.now();
    assert.equal((await lab.exec(node, ['croft', 'stop', 'web'])).code, 0);
    await waitMembers(lab, others, others, 10_000);
    await waitFor(`${node} drained and stopped web`, async () => (await moduleView(lab, node))?.state === 'STOP', DRAIN_MS + 15_000, 100);
    assert.equal((await lab.exec(node, ['croft', 'start', 'web'])).code, 0);
    await waitMembers(lab, NODES, NODES, 20_000);
    await sleep(1_000);
    const conns = await h.stop();
    const mine = conns.filter((c) => c.answers[0]?.node === node);
    const events = conns.flatMap((c) => c.events);
    const resets = events.filter((e) => e.what !== 'closed');
    console.log(`# IPv6, stop with drain_ms ${DRAIN_MS} and start of ${node}: ${conns.length} keep-alive clients, ${mine.length} on ${node},`
      + ` ${events.filter((e) => e.what === 'closed').length} closed by its nginx; resets or errors anywhere: ${resets.length}`);
    assert.ok(mine.length >= 30, `${node} served ${mine.length} clients`);
    assert.deepEqual(resets, []);
    assert.deepEqual(conns.filter((c) => c.answers[0]?.node !== node && c.events.length).map((c) => c.src), [], 'no event on the other nodes');
    for (const c of mine) assert.ok(c.answers.some((a) => a.at >= t0 && others.includes(a.node)), `client ${c.src} answered after the stop`);
  });

  test('lab kill of a node: every IPv6 client is answered again within 1.5 s, then all by the new map', async () => {
    const victim = 'n2';
    const others = NODES.filter((n) => n !== victim);
    await waitMembers(lab, NODES, NODES, 30_000);
    checkAnswers(await farmMap(lab, 'n1'), await clients(lab, VIP6, { sources: sources6, mode: 'once' }), sources6);
    const t0 = Date.now();
    await lab.kill(victim);
    const res = await clients(lab, VIP6, { sources: sources6, mode: 'until-all', timeoutMs: 100, deadlineMs: 10_000 });
    for (const src of sources6) assert.ok(res.results[src], `client ${src} answered after lab kill of ${victim}`);
    const last = Math.max(...Object.values(res.answeredAtMs)) - t0;
    await waitMembers(lab, others, others);
    checkAnswers(await farmMap(lab, others[0]!), await clients(lab, VIP6, { sources: sources6, mode: 'once' }), sources6);
    console.log(`# IPv6, lab kill of ${victim} -> all ${sources6.length} IPv6 clients answered again in ${last} ms`);
    assert.ok(last <= 1_500, `all within 1.5 s after lab kill: ${last} ms`);
    await lab.start(victim);
    await waitMembers(lab, NODES, NODES, 30_000);
  });
});
