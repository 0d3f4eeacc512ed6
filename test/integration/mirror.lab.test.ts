// The mirror in a real 2-node lab: real daemons, the FUSE mirror over /srv/croft/mirror-test/data
// (a private folder of each node), a writer appending fsync'd numbered lines as the application
// (test/fixtures/mirror-app). Figures are printed on lines starting with '# '.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import { daemonLog, sleep, waitFor } from '../helpers/cluster.js';
import { assertSequence, cat, hasVip as vipOn, lines, mirrorStatus as statusOf, waitStates as waitStatesOf, writerPid as writerPidOf } from '../helpers/mirror-lab.js';
import { fixtures } from '../helpers/paths.js';

const MODULE = 'mirror-app';
const DIR = '/srv/croft/mirror-test/data';
const FILE = `${DIR}/lines.txt`;
const VIP = '10.77.0.200';
/** The module's second VIP (IPv6): the primary holds both, and hands both over on a failover. */
const VIP6 = 'fd00:77::200';

const mirrorStatus = (lab: Lab, node: string) => statusOf(lab, node, MODULE);
const waitStates = (lab: Lab, want: Record<string, string>, timeoutMs = 20_000) => waitStatesOf(lab, want, timeoutMs, MODULE);
const hasVip4 = (lab: Lab, node: string) => vipOn(lab, node, VIP);

async function hasVip6(lab: Lab, node: string): Promise<boolean> {
  const r = await lab.exec(node, ['ip', '-6', '-o', 'addr', 'show']);
  return r.stdout.includes(` ${VIP6}/128 `);
}

/** Both VIPs on the node (true), neither (false); one without the other fails the test. */
async function hasVip(lab: Lab, node: string): Promise<boolean> {
  const [four, six] = await Promise.all([hasVip4(lab, node), hasVip6(lab, node)]);
  assert.equal(four, six, `${node} holds ${VIP} ${four ? 'but not' : 'without'} ${VIP6}`);
  return four;
}

const writerPid = (lab: Lab, node: string) => writerPidOf(lab, node, 'mirror-app');

/** FUSE mounts over the replicated directory in the node's own mount namespace. */
async function mountsOf(lab: Lab, node: string): Promise<string[]> {
  const r = await lab.exec(node, ['cat', '/proc/self/mounts']);
  return r.stdout.split('\n').filter((l) => l.includes(DIR));
}

describe('mirror: two nodes, a writer on the replicated directory', { timeout: 300_000 }, () => {
  let lab: Lab;
  let config: string;
  beforeAll(async () => {
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-mirrortest-'));
    fs.cpSync(path.join(fixtures, 'mirror-app'), path.join(config, 'modules', MODULE), { recursive: true });
    // Two VIPs, IPv4 and IPv6 (the lab gives the nodes and the client IPv6 addresses too).
    const file = path.join(config, 'modules', MODULE, 'module.yaml');
    const yaml = fs.readFileSync(file, 'utf8').replace(`vip: ${VIP}`, `vip: [${VIP}, "${VIP6}"]`);
    assert.ok(yaml.includes(VIP6));
    fs.writeFileSync(file, yaml);
    lab = await Lab.up({ name: `mi${process.pid % 100000}`, nodes: 2, clients: 1, ipv6: true, config, intervalMs: 100, timeoutMs: 500 });
  });
  afterAll(async () => {
    // Keep the daemons' logs of the last run for a person looking into a failure.
    if (lab) for (const n of ['n1', 'n2']) fs.cpSync(path.join(lab.stateDir, 'nodes', n, 'daemon.log'), path.join(os.tmpdir(), `croft-mirror-lab-${n}.log`));
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('croft prim on n1: ALONE, then PRIM with n2 SECOND after the reintegration; n2 holds the same file', async () => {
    // No record anywhere (first start): neither node elects itself.
    await waitStates(lab, { n1: 'WAIT', n2: 'WAIT' });
    await sleep(1500); // longer than the peer wait: still nobody primary
    assert.equal((await mirrorStatus(lab, 'n1'))?.state, 'WAIT');
    assert.equal((await mirrorStatus(lab, 'n1'))?.data, 'unknown');

    const t0 = Date.now();
    const r = await lab.exec('n1', ['croft', 'prim', MODULE]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('n1 ALONE', async () => (await mirrorStatus(lab, 'n1'))?.state !== 'WAIT', 10_000);
    const alone = daemonLog(lab, 'n1').find((l) => Date.parse(l.time) >= t0 && l.module === MODULE && l.to === 'ALONE');
    assert.ok(alone, 'n1 went through ALONE');
    const ms = await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' });
    const last = (await mirrorStatus(lab, 'n1'))?.lastReintegration;
    console.log(`# prim n1 -> PRIM+SECOND in ${Date.now() - t0} ms (wait ${ms}); first reintegration: ${last?.full ? 'full' : 'dirty log'}, ${last?.bytesCopied} bytes copied in ${last?.durationMs} ms`);
    assert.ok(await hasVip(lab, 'n1'), 'both VIPs are on n1');
    assert.ok(!(await hasVip(lab, 'n2')), 'and not on n2');
    // The client reaches the primary at the IPv6 VIP (n1 answers its neighbour solicitation).
    assert.equal((await lab.exec('client', ['ping', '-6', '-c1', '-W2', VIP6])).code, 0, `ping ${VIP6} from the client`);
    assert.ok(await writerPid(lab, 'n1'), 'the application runs on n1');
    assert.equal((await mountsOf(lab, 'n1')).length, 1, 'n1 has the mirror mounted');
    assert.equal((await mountsOf(lab, 'n2')).length, 0, 'n2 has no mount (the replica writes in place)');

    // A second `prim` is refused with the machine's reason (exit 1).
    const again = await lab.exec('n1', ['croft', 'prim', MODULE]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already PRIM/);

    await sleep(1000);
    // Freeze the writer, compare both files, let it go on.
    const pid = (await writerPid(lab, 'n1'))!;
    await lab.exec('n1', ['kill', '-STOP', String(pid)]);
    try {
      await sleep(100);
      const a = await cat(lab, 'n1', FILE);
      const b = await cat(lab, 'n2', FILE);
      assert.ok(lines(a).length > 20, `the writer wrote (${lines(a).length} lines)`);
      assert.equal(b, a, "n2's file equals n1's");
      assertSequence(lines(a), 'n1');
      console.log(`# n1 and n2 hold the same ${lines(a).length} lines (${a.length} bytes)`);
    } finally {
      await lab.exec('n1', ['kill', '-CONT', String(pid)]);
    }
    const v = await lab.exec('n1', ['croft', 'mirror', 'verify', MODULE]);
    assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /identical/);
    const s = await lab.exec('n1', ['croft', 'status']);
    assert.match(s.stdout, new RegExp(`^${MODULE}\\s+mirror\\s+PRIM g\\d+\\s+SECOND g\\d+$`, 'm'));
  });

  test('lab kill n1: n2 ALONE with the VIP and the application; every line n1 acknowledged is there', async () => {
    await sleep(500);
    const t0 = Date.now();
    await lab.kill('n1');
    const acked = Number((await cat(lab, 'n1', '/run/croft/mirror-app.acked')).trim());
    // While n2 takes over, its VIPs are added one after the other (a poll may see the IPv4 one
    // alone, as a fresh-clone run did): both are waited for, then checked together once settled.
    await waitFor('n2 ALONE, VIPs and writer on n2', async () => (await mirrorStatus(lab, 'n2'))?.state === 'ALONE'
      && (await hasVip4(lab, 'n2')) && (await hasVip6(lab, 'n2')) && (await writerPid(lab, 'n2')) !== null, 15_000, 50);
    const failoverMs = Date.now() - t0;
    assert.ok(await hasVip(lab, 'n2'), 'both VIPs are on n2');
    console.log(`# lab kill n1 -> n2 ALONE with VIP and writer in ${failoverMs} ms (heartbeat timeout 500 ms)`);
    // n2 announced the IPv6 VIP (unsolicited advertisement, override): the client's entry moved to
    // n2's MAC without a new solicitation, and the client reaches it there.
    const mac2 = (await lab.exec('n2', ['cat', '/sys/class/net/eth0/address'])).stdout.trim();
    await waitFor(`the client's entry for ${VIP6} is n2's MAC`, async () => {
      const r = await lab.exec('client', ['ip', '-j', '-6', 'neigh', 'show', VIP6, 'dev', 'eth0']);
      return (JSON.parse(r.stdout || '[]') as Array<{ lladdr?: string }>)[0]?.lladdr === mac2;
    }, 2_000, 50);
    assert.equal((await lab.exec('client', ['ping', '-6', '-c1', '-W2', VIP6])).code, 0, `ping ${VIP6} from the client after the failover`);
    assert.ok(failoverMs < 8000, `failover within a few seconds (${failoverMs} ms)`);
    await sleep(1000);
    const after = lines(await cat(lab, 'n2', FILE));
    assertSequence(after, 'n2 after failover');
    assert.ok(after.length > acked, `n2 holds every line n1 acknowledged (${acked}) and its own after (${after.length})`);
    console.log(`# n1 acknowledged ${acked} lines before the kill; n2 holds 1..${after.length} (none lost)`);
  });

  test('n1 restarted: reintegration from the dirty log, n1 SECOND; swap moves the application back', async () => {
    const before = await mirrorStatus(lab, 'n2');
    const dirtyBefore = before?.dirtyBytes ?? null;
    const t0 = Date.now();
    await lab.start('n1');
    await waitStates(lab, { n1: 'SECOND', n2: 'PRIM' }, 30_000);
    const ms = Date.now() - t0;
    const last = (await mirrorStatus(lab, 'n2'))?.lastReintegration;
    assert.ok(last, 'n2 reports its reintegration');
    console.log(`# n1 restarted -> SECOND in ${ms} ms; reintegration ${last.full ? 'FULL' : 'from the dirty log'}: ${last.bytesCopied} bytes copied for ${last.dirtyBytesAtStart} dirty bytes in ${last.dirtyEntriesAtStart} entries (n2 showed ${dirtyBefore} dirty bytes before), ${last.durationMs} ms`);
    assert.equal(last.full, false, 'a trusted dirty log: only what changed is copied');
    const v = await lab.exec('n2', ['croft', 'mirror', 'verify', MODULE, '--json']);
    assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);

    const t1 = Date.now();
    const r = await lab.exec('n2', ['croft', 'swap', MODULE]);
    assert.equal(r.code, 0, r.stderr);
    await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' }, 30_000);
    await waitFor('writer on n1', async () => (await writerPid(lab, 'n1')) !== null, 5000);
    console.log(`# swap: application back on n1 (PRIM, n2 SECOND) in ${Date.now() - t1} ms`);
    assert.ok(await hasVip(lab, 'n1'));
    assert.ok(!(await hasVip(lab, 'n2')));
    assert.equal(await writerPid(lab, 'n2'), null, 'the writer stopped on n2');
    await sleep(500);
    const pid = (await writerPid(lab, 'n1'))!;
    await lab.exec('n1', ['kill', '-STOP', String(pid)]);
    try {
      await sleep(100);
      const a = await cat(lab, 'n1', FILE);
      assert.equal(await cat(lab, 'n2', FILE), a, 'both sides equal after the swap');
      assertSequence(lines(a), 'after swap');
    } finally {
      await lab.exec('n1', ['kill', '-CONT', String(pid)]);
    }
  });

  test('clean stop: no mount left in either node, no VIP', async () => {
    for (const n of ['n1', 'n2']) assert.equal((await lab.exec(n, ['croft', 'stop', MODULE])).code, 0);
    await waitStates(lab, { n1: 'STOP', n2: 'STOP' }, 20_000);
    // The state says STOP once the machine decided it; its actions (stop_prim, VIP, unmount) are
    // finishing in the runtime's queue: a few milliseconds, bounded here.
    const t0 = Date.now();
    await waitFor('no mount left', async () => (await mountsOf(lab, 'n1')).length === 0 && (await mountsOf(lab, 'n2')).length === 0, 5_000, 20).catch(() => undefined);
    console.log(`# clean stop: mounts gone ${Date.now() - t0} ms after both nodes showed STOP`);
    for (const n of ['n1', 'n2']) {
      assert.deepEqual(await mountsOf(lab, n), [], `no mount over ${DIR} on ${n}`);
      assert.ok(!(await hasVip(lab, n)), `no VIP on ${n}`);
      assert.equal(await writerPid(lab, n), null, `no writer on ${n}`);
    }
  });
});
