// The farm's data plane (farm/nft-render.ts, farm/nft-apply.ts, farm/vip.ts) in a 3-node lab with
// no daemons: the rule sets are applied inside each node by the drivers themselves
// (test/fixtures/farm/op.mjs); the client reaches the VIP through a static neighbour entry to the
// virtual MAC (the ARP responder is tested in native-arp.test.ts), which the lab's bridge floods
// to every node since no node ever sends from it.
import { describe, it, beforeAll, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import path from 'node:path';
import readline from 'node:readline';
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process';
import { Lab } from '../../top/lab/index.js';
import { nftBucket } from '../../src/native/index.js';
import { fixtures, repoRoot } from '../helpers/paths.js';
import type { NftFarmSpec } from '../../farm/nft-render.js';

const VIP = '10.77.0.100';
const VMAC = '02:00:5e:4c:00:64';
const PORT = 8080;
const SEED = 0x1234abcd;
const BUCKETS = 256;
const CLIENTS = 200;
const HELD = 120;
const NODES = ['n1', 'n2', 'n3'];
const opScript = path.join(fixtures, 'farm', 'op.mjs');
const clientScript = path.join(fixtures, 'farm', 'client.mjs');
const serverScript = path.join(fixtures, 'farm', 'name-server.mjs');

const specOf = (owned: number[]): NftFarmSpec => ({
  table: 'croft_fdp',
  ifname: 'eth0',
  vip: VIP,
  virtualMac: VMAC,
  macMode: 'invisible',
  buckets: BUCKETS,
  balance: 'source-ip',
  ports: [PORT],
  ownedBuckets: owned,
  hashExpr: `jhash ip saddr mod ${BUCKETS} seed 0x${SEED.toString(16)}`,
});

/** Initial map: bucket b to NODES[b % 3]. */
const initialOwner = (b: number): string => NODES[b % 3]!;
/** After the move: n2's buckets go alternately to n1 and n3. */
const movedOwner = (b: number): string => (b % 3 === 1 ? (Math.floor(b / 3) % 2 === 0 ? 'n1' : 'n3') : initialOwner(b));
const bucketsOf = (owner: (b: number) => string, node: string): number[] =>
  Array.from({ length: BUCKETS }, (_, b) => b).filter((b) => owner(b) === node);

type Probe = Record<string, { tcp: string; udp: string[] }>;
type Held = Record<string, { node: string; echoes: number; lastEchoAgoMs: number; error: string | null }>;

describe('farm data plane in a 3-node lab', { timeout: 120_000 }, () => {
  let lab: Lab | undefined;
  const servers: ChildProcess[] = [];
  let holder: ChildProcessWithoutNullStreams | undefined;
  let holderLines: AsyncIterator<string> | undefined;
  let clients: string[] = [];

  async function op(node: string, req: object): Promise<{ ok: boolean; code?: string; message?: string; [k: string]: unknown }> {
    const r = await lab!.exec(node, [process.execPath, opScript, repoRoot, JSON.stringify(req)], { timeoutMs: 20_000 });
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    assert.ok(line.startsWith('{'), `op ${JSON.stringify(req).slice(0, 60)} on ${node}: ${r.stdout}${r.stderr}`);
    return JSON.parse(line) as { ok: boolean };
  }

  async function sh(target: string, argv: string[]): Promise<string> {
    const r = await lab!.exec(target, argv, { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `${target}: ${argv.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  async function probe(): Promise<Probe> {
    const out = await sh('client', [process.execPath, clientScript, 'probe', JSON.stringify({ vip: VIP, port: PORT, sources: clients })]);
    return JSON.parse(out) as Probe;
  }

  function expectOwners(result: Probe, owner: (b: number) => string): void {
    const wrong: string[] = [];
    const perNode: Record<string, number> = {};
    for (const src of clients) {
      const want = owner(nftBucket(src, null, BUCKETS, SEED));
      const got = result[src];
      if (!got || got.tcp !== want || got.udp.length !== 1 || got.udp[0] !== want) {
        wrong.push(`${src}: want ${want}, tcp ${got?.tcp}, udp [${got?.udp.join(',')}]`);
      }
      perNode[want] = (perNode[want] ?? 0) + 1;
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${clients.length} clients not answered once by their bucket's owner`);
    for (const n of NODES.filter((n) => bucketsOf(owner, n).length > 0)) {
      assert.ok((perNode[n] ?? 0) > 20, `node ${n} serves ${perNode[n] ?? 0} clients: the hash does not spread`);
    }
  }

  async function report(): Promise<Held> {
    holder!.stdin.write('report\n');
    for (;;) {
      const { value, done } = await holderLines!.next();
      assert.ok(!done, 'the holding client exited');
      if (value.startsWith('report ')) return JSON.parse(value.slice(7)) as Held;
    }
  }

  beforeAll(async () => {
    lab = await Lab.up({ name: `fdp${process.pid}`, nodes: 3, clients: CLIENTS, daemons: false });
    clients = lab.clientAddresses();
    await Promise.all(NODES.map(async (n) => {
      const r = await op(n, { op: 'up', spec: specOf(bucketsOf(initialOwner, n)) });
      assert.ok(r.ok, `up on ${n}: ${r.message}`);
    }));
    await Promise.all(NODES.map(async (n) => {
      const s = lab!.spawn(n, [process.execPath, serverScript, VIP, String(PORT), n], { stdio: ['ignore', 'pipe', 'pipe'] });
      servers.push(s);
      const lines = readline.createInterface({ input: s.stdout! });
      for await (const l of lines) if (l === 'ready') break;
    }));
    await sh('client', ['ip', 'neigh', 'replace', VIP, 'lladdr', VMAC, 'dev', 'eth0', 'nud', 'permanent']);
  });

  afterAll(async () => {
    holder?.stdin.end();
    holder?.kill('SIGKILL');
    for (const s of servers) s.kill('SIGKILL');
    if (lab) await lab.down();
  });

  it('(a) every one of 200 clients gets exactly one answer, from the owner of its bucket as nftBucket computes it', async () => {
    expectOwners(await probe(), initialOwner);
  });

  it('(b) 120 long-lived connections survive moving n2\'s buckets to n1 and n3; new connections follow the new map', async () => {
    holder = lab!.spawn('client', [process.execPath, clientScript, 'hold', JSON.stringify({ vip: VIP, port: PORT, sources: clients.slice(0, HELD) })], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }) as ChildProcessWithoutNullStreams;
    holderLines = readline.createInterface({ input: holder.stdout })[Symbol.asyncIterator]();
    const { value: ready } = await holderLines.next();
    assert.ok(typeof ready === 'string' && ready.startsWith('ready '), `holding client: ${ready}`);
    const nodeOf = JSON.parse(ready.slice(6)) as Record<string, string>;
    const perNode = NODES.map((n) => Object.values(nodeOf).filter((x) => x === n).length);
    assert.ok(perNode.every((k) => k >= 20), `connections per node ${perNode}`);

    await new Promise((r) => setTimeout(r, 500));
    const before = await report();
    assert.deepEqual(Object.entries(before).filter(([, c]) => c.error !== null || c.echoes < 3), [], 'connections echo before the move');

    // The move: one atomic set update per node.
    await Promise.all(NODES.map(async (n) => {
      const owned = bucketsOf(movedOwner, n);
      const r = await op(n, { op: 'setOwned', spec: specOf(owned), owned });
      assert.ok(r.ok, `setOwned on ${n}: ${r.message}`);
      assert.deepEqual(r.owned, owned);
    }));
    assert.deepEqual(bucketsOf(movedOwner, 'n2'), []);

    await new Promise((r) => setTimeout(r, 2000));
    const afterMove = await report();
    const broken = Object.entries(afterMove).filter(([src, c]) =>
      c.error !== null || c.lastEchoAgoMs > 500 || c.echoes - before[src]!.echoes < 12);
    assert.deepEqual(broken, [], `${broken.length} of ${HELD} connections were reset or stalled`);
    const onN2 = Object.values(afterMove).filter((c) => c.node === 'n2').length;
    assert.ok(onN2 >= 20, `only ${onN2} held connections on n2, whose buckets all moved`);

    const moved = clients.filter((src) => initialOwner(nftBucket(src, null, BUCKETS, SEED)) === 'n2');
    assert.ok(moved.length > 20);
    expectOwners(await probe(), movedOwner);
  });

  it('(d) the nodes\' kernels do not answer ARP for the VIP; without the arp table they would', async () => {
    const neighbour = async (): Promise<{ lladdr?: string; state?: string[] } | undefined> =>
      (JSON.parse(await sh('client', ['ip', '-j', 'neigh', 'show', VIP, 'dev', 'eth0'])) as Array<{ lladdr?: string; state?: string[] }>)[0];
    const pingVip = () => lab!.exec('client', ['ping', '-c', '1', '-W', '1', VIP], { timeoutMs: 5_000 });
    try {
      await sh('client', ['ip', 'neigh', 'del', VIP, 'dev', 'eth0']);
      // No ARP responder runs: with the kernel's replies dropped, nobody answers.
      await pingVip();
      const n = await neighbour();
      assert.ok(n?.lladdr === undefined, `the client learned ${n?.lladdr} for the VIP (state ${n?.state})`);

      // Counter-proof: n1 without its arp table answers with its own MAC.
      await sh('n1', ['nft', 'delete', 'table', 'arp', 'croft_fdp']);
      await sh('client', ['ip', 'neigh', 'flush', 'to', VIP, 'dev', 'eth0']);
      await pingVip();
      const n1Mac = (JSON.parse(await sh('n1', ['ip', '-j', 'link', 'show', 'eth0'])) as Array<{ address: string }>)[0]!.address;
      assert.equal((await neighbour())?.lladdr, n1Mac, 'without the arp table the kernel answers (else this test proves nothing)');

      // reconcile() puts the missing table back.
      const r = await op('n1', { op: 'reconcile', spec: specOf(bucketsOf(movedOwner, 'n1')) });
      assert.ok(r.ok, r.message);
      assert.equal((r.result as { fixed: string }).fixed, 'tables');
      await sh('client', ['ip', 'neigh', 'flush', 'to', VIP, 'dev', 'eth0']);
      await pingVip();
      assert.equal((await neighbour())?.lladdr, undefined, 'after reconcile the kernel is silent again');
    } finally {
      await sh('client', ['ip', 'neigh', 'replace', VIP, 'lladdr', VMAC, 'dev', 'eth0', 'nud', 'permanent']);
    }
  });

  it('(e) multicast-MAC mode: the same rules with a multicast virtual MAC', async () => {
    const MCAST = '01:00:5e:4c:00:64';
    const mspec = (n: string): NftFarmSpec => ({ ...specOf(bucketsOf(movedOwner, n)), virtualMac: MCAST, macMode: 'multicast' });
    try {
      await Promise.all(NODES.map(async (n) => assert.ok((await op(n, { op: 'up', spec: mspec(n) })).ok)));
      await sh('client', ['ip', 'neigh', 'replace', VIP, 'lladdr', MCAST, 'dev', 'eth0', 'nud', 'permanent']);
      expectOwners(await probe(), movedOwner);
    } finally {
      await Promise.all(NODES.map(async (n) => {
        assert.ok((await op(n, { op: 'up', spec: specOf(bucketsOf(movedOwner, n)) })).ok);
        await sh(n, ['bridge', 'fdb', 'del', MCAST, 'dev', 'eth0', 'self']);
      }));
      await sh('client', ['ip', 'neigh', 'replace', VIP, 'lladdr', VMAC, 'dev', 'eth0', 'nud', 'permanent']);
    }
  });

  it('(c) applying twice changes nothing; reconcile fixes drift; a bad rule set changes nothing; remove() leaves no croft table', async () => {
    const ruleset = () => sh('n1', ['nft', 'list', 'ruleset']);
    const spec = specOf(bucketsOf(movedOwner, 'n1'));
    const first = await ruleset();
    assert.match(first, /table arp croft_fdp/);
    for (let k = 0; k < 2; k++) assert.ok((await op('n1', { op: 'apply', spec })).ok);
    assert.equal(await ruleset(), first, 'apply twice');

    let r = await op('n1', { op: 'reconcile', spec });
    assert.deepEqual(r.result, { fixed: 'nothing', reasons: [] });
    await sh('n1', ['nft', 'flush', 'set', 'ip', 'croft_fdp', 'owned']);
    r = await op('n1', { op: 'reconcile', spec });
    assert.equal((r.result as { fixed: string }).fixed, 'buckets');
    await sh('n1', ['nft', 'flush', 'chain', 'ip', 'croft_fdp', 'vip']);
    r = await op('n1', { op: 'reconcile', spec });
    assert.equal((r.result as { fixed: string }).fixed, 'tables');
    assert.equal(await ruleset(), first, 'reconcile restored the same rule set');

    // nft refuses the whole transaction: nothing of the old rule set is lost.
    r = await op('n1', { op: 'apply', spec: { ...spec, hashExpr: `jhash ip saddr mod ${BUCKETS} seed 0xnothex` } });
    assert.equal(r.ok, false);
    assert.equal(r.code, 'CROFT_ERR_NFT_APPLY');
    assert.match(r.message!, /seed|syntax|Error/);
    assert.equal(await ruleset(), first, 'a refused apply changed something');

    // The other forms the renderer makes are accepted by this nft and kernel too (IPv6 with the
    // rewrite of the kernel's solicitations, source-ip-port, several VIPs of both families).
    for (const other of [
      { ...spec, table: 'croft_fdp6', vip: 'fd00:77::100', hashExpr: `jhash ip6 saddr . tcp sport mod ${BUCKETS} seed 0x1`, balance: 'source-ip-port', ports: [],
        ownMac: '52:54:00:12:34:56' },
      { ...spec, table: 'croft_fdpm', vips: [spec.vip, 'fd00:77::100', '10.77.0.101', 'fd00:77::101'], ownMac: '52:54:00:12:34:56',
        hashExprs: { ip: spec.hashExpr, ip6: spec.hashExpr.replace('jhash ip saddr', 'jhash ip6 saddr') } },
      { ...spec, table: 'croft_fdpn', hashExpr: `jhash ip saddr & 255.255.255.0 mod ${BUCKETS} seed 0x1`, balance: 'network' },
    ]) {
      r = await op('n1', { op: 'apply', spec: other });
      assert.ok(r.ok, `apply ${other.table}: ${r.message}`);
      assert.deepEqual((await op('n1', { op: 'reconcile', spec: other })).result, { fixed: 'nothing', reasons: [] });
      assert.ok((await op('n1', { op: 'remove', spec: other })).ok);
    }

    r = await op('n1', { op: 'down', spec });
    assert.ok(r.ok, r.message);
    assert.equal(r.hasVip, false);
    assert.equal((await sh('n1', ['nft', 'list', 'tables'])).trim(), '', 'croft tables left after remove()');
    assert.doesNotMatch(await sh('n1', ['ip', 'addr', 'show', 'dev', 'eth0']), new RegExp(VIP.replace(/\./g, '\\.')));
  });
});
