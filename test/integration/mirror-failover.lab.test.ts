// Failover of a mirror under a writer whose every acknowledged write is known outside the node
// that dies: the writer (test/fixtures/mirror-ack) reports each line to a collector in the lab's
// client namespace only after its fsync returned. 20 runs: lab kill of the current PRIM, the
// survivor goes ALONE and restarts the writer, every acknowledged line is in its file (in order,
// no hole), the killed node returns as SECOND, next run kills the other one. Figures on '# ' lines.
// Once per replication mode (DESIGN.md, "Replication contracts"): every-change (ack received), and
// on-sync (ack durable), whose fsync waits for everything before it; then on-sync with a writer
// that never fsyncs, reporting each line once close() returned (close-to-open), 6 runs. Each suite
// first checks that `croft mirror status` (text and --json) and each mount show the configured mode
// and ack level.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import { sleep, stats, waitFor } from '../helpers/cluster.js';
import {
  ACK_FILE, ACK_MODULE, ackConfig, assertSequence, cat, Collector, hasVip, lines, mirrorStatus, primOnN1, waitStates, writerPid,
} from '../helpers/mirror-lab.js';

type Mode = 'every-change' | 'on-sync';
const SUITES: { mode: Mode; ack: 'received' | 'durable'; durableBy: 'fsync' | 'close'; runs: number }[] = [
  { mode: 'every-change', ack: 'received', durableBy: 'fsync', runs: 20 },
  { mode: 'on-sync', ack: 'durable', durableBy: 'fsync', runs: 20 },
  { mode: 'on-sync', ack: 'received', durableBy: 'close', runs: 6 },
];

for (const { mode, ack, durableBy, runs: RUNS } of SUITES) {
describe(`mirror failover (mode ${mode}, ack ${ack}, lines durable by ${durableBy}): lab kill of the PRIM under a writer with acknowledgements outside the node`, { timeout: 240_000 }, () => {
  let lab: Lab | undefined;
  let collector: Collector | undefined;
  let config: string;
  beforeAll(async () => {
    config = ackConfig(`mode: ${mode}\nack: ${ack}\n`);
    fs.writeFileSync(path.join(config, 'modules', ACK_MODULE, 'durable_by'), `${durableBy}\n`);
    lab = await Lab.up({ name: `mf${mode === 'on-sync' ? (durableBy === 'close' ? 'c' : 's') : 'e'}${process.pid % 10000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
    collector = await Collector.start(lab);
  });
  afterAll(async () => {
    await collector?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test(`croft mirror status shows mode ${mode} and ack ${ack}, as configured and as the mount runs`, async () => {
    const l = lab!;
    await primOnN1(l, collector!);
    const api = await mirrorStatus(l, 'n1');
    assert.ok(api, 'the API answers');
    assert.equal(api.mode, mode);
    assert.equal(api.ack, ack);
    // The mount itself (its stream attached by the reintegration that made n2 SECOND).
    assert.ok(api.links.length >= 1, JSON.stringify(api.links));
    for (const link of api.links) {
      assert.equal(link.mode, mode, JSON.stringify(link));
      assert.equal(link.ackLevel, ack, JSON.stringify(link));
    }
    const json = await l.exec('n1', ['croft', 'mirror', 'status', ACK_MODULE, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const j = JSON.parse(json.stdout) as { mode: string; ack: string; links: { mode: string; ackLevel: string }[] };
    assert.deepEqual([j.mode, j.ack, j.links[0]?.mode, j.links[0]?.ackLevel], [mode, ack, mode, ack]);
    const text = await l.exec('n1', ['croft', 'mirror', 'status', ACK_MODULE]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`ack: ${ack}; mode: ${mode};`));
  });

  test(`${RUNS} runs: kill the PRIM, the survivor runs alone with every acknowledged line`, async () => {
    const l = lab!;
    const c = collector!;
    // PRIM on n1 with the writer acknowledging: the status test above.
    await waitFor('writer acknowledging on n1', () => c.maxAcked('n1') > 0, 5000);

    let prim = 'n1';
    const toAlone: number[] = [];
    const toWriter: number[] = [];
    const ackedPerRun: number[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const survivor = prim === 'n1' ? 'n2' : 'n1';
      const before = c.maxAcked();
      await sleep(400 + (run % 4) * 150); // the kill lands at various points of the write/fsync/report cycle
      const t0 = Date.now();
      await l.kill(prim);
      const aloneMs = await waitFor(`${survivor} ALONE (run ${run})`, async () => (await mirrorStatus(l, survivor))?.state === 'ALONE', 15_000, 20);
      // Writing again: the first acknowledgement from the survivor after the kill.
      await waitFor(`${survivor} writer acknowledging (run ${run})`, () => c.reports().some((r) => r.node === survivor && r.atMs >= t0), 15_000, 20);
      const firstAck = c.reports().find((r) => r.node === survivor && r.atMs >= t0)!;
      const writerMs = firstAck.atMs - t0;
      const acked = c.maxAcked(prim); // nothing from the killed node arrives after this point
      assert.ok(acked > before, `run ${run}: ${prim} acknowledged lines during the run (${before} -> ${acked})`);
      assert.ok(firstAck.n > acked, `run ${run}: the survivor's first acknowledged line (${firstAck.n}) follows the last one of ${prim} (${acked})`);
      const file = lines(await cat(l, survivor, ACK_FILE));
      assertSequence(file, `run ${run}: ${survivor}'s file`);
      assert.ok(file.length >= acked, `run ${run}: ${survivor} holds every line ${prim} acknowledged (${acked}); it has 1..${file.length}`);
      assert.ok(await hasVip(l, survivor), `run ${run}: the VIP is on ${survivor}`);
      toAlone.push(aloneMs);
      toWriter.push(writerMs);
      ackedPerRun.push(acked - before);
      console.log(`# run ${run}: kill ${prim} -> ${survivor} ALONE ${aloneMs} ms, writer acknowledging again ${writerMs} ms; ${acked - before} lines acknowledged in the run (last ${acked}), ${survivor} holds 1..${file.length}`);

      await l.start(prim);
      await waitStates(l, { [survivor]: 'PRIM', [prim]: 'SECOND' }, 30_000);
      assert.ok(await writerPid(l, survivor), `run ${run}: the writer runs on ${survivor}`);
      prim = survivor;
    }
    const a = stats(toAlone);
    const w = stats(toWriter);
    const k = stats(ackedPerRun);
    console.log(`# mode ${mode}, ack ${ack}, lines durable by ${durableBy}: ${RUNS} runs, heartbeat 100 ms / timeout 500 ms: kill -> survivor ALONE min ${a.min} / median ${a.median} / max ${a.max} ms`);
    console.log(`# kill -> writer acknowledging again: min ${w.min} / median ${w.median} / max ${w.max} ms`);
    console.log(`# lines acknowledged per run: min ${k.min} / median ${k.median} / max ${k.max}; none lost in any run`);
    assert.ok(a.max < 8000, `every failover within a few seconds (max ${a.max} ms)`);

    // The last pair is in sync: the SECOND holds the PRIM's file.
    const v = await l.exec(prim, ['croft', 'mirror', 'verify', ACK_MODULE]);
    assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
  });
});
}
