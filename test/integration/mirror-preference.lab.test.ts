// prim_preference: after a failover to n2 and the reintegration of n1, the application goes back
// to the preferred node n1 by itself (stop_prim on n2, then n1 PRIM, n2 SECOND), and no line the
// writer acknowledged (reported outside the nodes after its fsync) is lost on the way.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import { sleep, waitFor } from '../helpers/cluster.js';
import { ACK_FILE, ackConfig, assertSequence, cat, Collector, hasVip, lines, primOnN1, waitStates, writerPid } from '../helpers/mirror-lab.js';

describe('mirror prim_preference: the application returns to the preferred node', { timeout: 180_000 }, () => {
  let lab: Lab | undefined;
  let collector: Collector | undefined;
  let config: string;
  beforeAll(async () => {
    config = ackConfig('prim_preference: n1\n');
    lab = await Lab.up({ name: `mp${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
    collector = await Collector.start(lab);
  });
  afterAll(async () => {
    await collector?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('n1 killed: n2 takes over; n1 back: reintegration, then n1 PRIM again by itself', async () => {
    const l = lab!;
    const c = collector!;
    await primOnN1(l, c);
    await sleep(500);

    await l.kill('n1');
    await waitStates(l, { n2: 'ALONE' }, 15_000);
    await waitFor('writer acknowledging on n2', () => c.maxAcked('n2') > 0, 10_000);
    await sleep(500);
    assert.ok(await hasVip(l, 'n2'), 'n2 holds the VIP while n1 is away');

    const t0 = Date.now();
    await l.start('n1');
    // The reintegration makes n1 SECOND; the preference then hands the application back to n1.
    const backMs = await waitStates(l, { n1: 'PRIM', n2: 'SECOND' }, 60_000);
    await waitFor('writer acknowledging on n1 again', () => c.reports().some((r) => r.node === 'n1' && r.atMs >= t0), 10_000);
    console.log(`# lab start n1 -> reintegration, then n1 PRIM / n2 SECOND by prim_preference in ${Date.now() - t0} ms (${backMs} ms of waiting)`);
    assert.ok(await hasVip(l, 'n1'), 'the VIP is back on n1');
    assert.ok(!(await hasVip(l, 'n2')), 'and no longer on n2');
    assert.ok(await writerPid(l, 'n1'), 'the application runs on n1');
    assert.equal(await writerPid(l, 'n2'), null, 'and no longer on n2');

    // Nothing acknowledged was lost: n1's file holds every line any node acknowledged, in order.
    await sleep(300);
    const pid = (await writerPid(l, 'n1'))!;
    await l.exec('n1', ['kill', '-STOP', String(pid)]);
    try {
      await sleep(100);
      const a = lines(await cat(l, 'n1', ACK_FILE));
      assertSequence(a, "n1's file");
      assert.ok(a.length >= c.maxAcked(), `n1 holds 1..${a.length}, every acknowledged line (up to ${c.maxAcked()})`);
      assert.deepEqual(lines(await cat(l, 'n2', ACK_FILE)), a, "n2's file equals n1's");
      console.log(`# ${c.maxAcked()} lines acknowledged across the failover and the return; none lost, both nodes equal`);
    } finally {
      await l.exec('n1', ['kill', '-CONT', String(pid)]);
    }
  });
});
