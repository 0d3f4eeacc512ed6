// The mirror's commands in a real 2-node lab: `croft second` on the PRIM hands the application
// over, `croft second` on a SECOND changes nothing, `croft swap` on a SECOND is refused with the
// reason; `croft mirror status` shows a reintegration's progress (bytes to go, rate, ETA) while it
// runs (1 GiB written while the peer was stopped, so that the copy lasts long enough to be seen).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { MirrorStatusView } from '../../top/cli/mirror.js';
import { Lab } from '../../top/lab/index.js';
import { nodeApi, sleep, waitFor } from '../helpers/cluster.js';
import { ACK_DIR, ACK_MODULE, ackConfig, Collector, hasVip, mirrorStatus, waitStates, writerPid } from '../helpers/mirror-lab.js';

const BIG_MIB = 1024;

async function metrics(lab: Lab, node: string): Promise<string> {
  const r = await nodeApi<string>(lab, node, 'GET', '/metrics');
  assert.equal(r.status, 200);
  return r.body;
}

/** The value of the first sample of `name` for the module (null when absent). */
function metric(text: string, name: string): number | null {
  const line = text.split('\n').find((x) => x.startsWith(`${name}{`) && x.includes(`module="${ACK_MODULE}"`));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('mirror commands: second, swap refused, reintegration progress', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  let collector: Collector | undefined;
  let config: string;
  beforeAll(async () => {
    config = ackConfig('zone_bytes: 1048576\n');
    lab = await Lab.up({ name: `mc${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
    collector = await Collector.start(lab);
  });
  afterAll(async () => {
    await collector?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('croft second on the PRIM hands over; on the SECOND it is a no-op; swap on the SECOND is refused', async () => {
    const l = lab!;
    await waitStates(l, { n1: 'WAIT', n2: 'WAIT' });
    assert.equal((await l.exec('n1', ['croft', 'prim', ACK_MODULE])).code, 0);
    await waitStates(l, { n1: 'PRIM', n2: 'SECOND' });
    // The sealed link in the metrics (issue 8: a dead session shows there too): n1 streams, n2's
    // replica holds the session, nothing tampered.
    await waitFor('n1 streams to n2 and n2 holds the session (metrics)', async () =>
      metric(await metrics(l, 'n1'), 'croft_mirror_link_connected') === 1 && metric(await metrics(l, 'n2'), 'croft_mirror_replica_connected') === 1, 10_000);
    assert.equal(metric(await metrics(l, 'n1'), 'croft_mirror_link_tampered_total'), 0);
    assert.equal(metric(await metrics(l, 'n2'), 'croft_mirror_replica_tampered_total'), 0);

    const t0 = Date.now();
    const second = await l.exec('n1', ['croft', 'second', ACK_MODULE]);
    assert.equal(second.code, 0, second.stderr);
    await waitStates(l, { n1: 'SECOND', n2: 'PRIM' }, 30_000);
    console.log(`# croft second on the PRIM n1 -> n2 PRIM, n1 SECOND in ${Date.now() - t0} ms`);
    assert.ok(await writerPid(l, 'n2'), 'the application runs on n2');
    assert.equal(await writerPid(l, 'n1'), null, 'and no longer on n1');
    assert.ok(await hasVip(l, 'n2') && !(await hasVip(l, 'n1')), 'the VIP moved to n2');
    assert.equal((await mirrorStatus(l, 'n2'))?.application, 'running', "n2's status: the application runs here");
    assert.equal((await mirrorStatus(l, 'n1'))?.application, 'stopped', "n1's status: not here");
    const text = await l.exec('n2', ['croft', 'mirror', 'status', ACK_MODULE]);
    assert.match(text.stdout, /^application here: running$/m);

    const again = await l.exec('n1', ['croft', 'second', ACK_MODULE]);
    assert.equal(again.code, 0, `second on a SECOND: ${again.stderr}`);
    const swap = await l.exec('n1', ['croft', 'swap', ACK_MODULE]);
    assert.equal(swap.code, 1, 'swap on a SECOND is refused');
    assert.match(swap.stderr, /swap needs this node PRIM/);
    await sleep(500);
    assert.equal((await mirrorStatus(l, 'n1'))?.state, 'SECOND');
    assert.equal((await mirrorStatus(l, 'n2'))?.state, 'PRIM');
  });

  test('croft mirror status shows bytes to go, rate and ETA during a reintegration', async () => {
    const l = lab!;
    // n1 (SECOND) stops: n2 runs ALONE and 1 GiB is written there.
    assert.equal((await l.exec('n1', ['croft', 'stop', ACK_MODULE])).code, 0);
    await waitStates(l, { n1: 'STOP', n2: 'ALONE' }, 20_000);
    await waitFor("n2's metrics show its link to n1 down", async () => metric(await metrics(l, 'n2'), 'croft_mirror_link_connected') === 0, 10_000);
    const dd = await l.exec('n2', ['dd', 'if=/dev/zero', `of=${ACK_DIR}/big.bin`, 'bs=1M', `count=${BIG_MIB}`, 'conv=fsync'], { timeoutMs: 180_000 });
    assert.equal(dd.code, 0, dd.stderr);
    // Status computes the dirty bytes off the JS thread and shows the last value computed.
    let dirty: number | null | undefined = null;
    await waitFor('n2 shows the 1 GiB dirty', async () => {
      dirty = (await mirrorStatus(l, 'n2'))?.dirtyBytes;
      return (dirty ?? 0) >= BIG_MIB * 1024 * 1024;
    }, 10_000);
    console.log(`# n2 ALONE after writing ${BIG_MIB} MiB: ${dirty} dirty bytes`);

    // n1 starts again: n2 copies the dirty zones into it; sample the status while it runs.
    const samples: MirrorStatusView[] = [];
    let text = '';
    assert.equal((await l.exec('n1', ['croft', 'start', ACK_MODULE])).code, 0);
    const t0 = Date.now();
    await waitFor('the reintegration seen running with its progress', async () => {
      const st = await mirrorStatus(l, 'n2');
      // Past its scan (connecting, reading both dirty logs), when it knows what it has to copy.
      if (st?.reintegration?.running && st.reintegration.phase !== 'scan') {
        samples.push(st);
        if (!text) {
          const r = await l.exec('n2', ['croft', 'mirror', 'status', ACK_MODULE]);
          if (/to go/.test(r.stdout)) text = r.stdout;
        }
      }
      return samples.length >= 3 && text !== '';
    }, 60_000, 20);
    const withRate = samples.filter((s) => s.reintegration!.rateBytesPerSec > 0 && s.reintegration!.etaMs !== null);
    assert.ok(withRate.length > 0, `a sample with a rate and an ETA: ${JSON.stringify(samples.map((s) => s.reintegration))}`);
    const first = samples[0]!.reintegration!;
    assert.ok(first.bytesToGo > 0, `bytes to go while running: ${first.bytesToGo}`);
    const toGo = samples.map((s) => s.reintegration!.bytesToGo);
    assert.ok(toGo.at(-1)! < toGo[0]!, `bytes to go fall as the copy goes: ${toGo.join(' ')}`);
    assert.match(text, /reintegration \(source, dirty zones, \w+\): [\d.]+ \w+ to go, [\d.]+ \w+ copied, [\d.]+ \w+\/s, ETA \S+/);
    const line = text.split('\n').find((x) => x.startsWith('reintegration ('))!;
    console.log(`# during the reintegration of ${BIG_MIB} MiB, croft mirror status on n2 printed: ${line}`);
    await waitStates(l, { n1: 'SECOND', n2: 'PRIM' }, 120_000);
    const last = (await mirrorStatus(l, 'n2'))?.lastReintegration;
    console.log(`# reintegration done in ${Date.now() - t0} ms: ${last?.bytesCopied} bytes copied for ${last?.dirtyBytesAtStart} dirty bytes, ${last?.durationMs} ms`);
    assert.equal(last?.full, false);
  });
});
