// Failover of a mirror under a writer whose every acknowledged write is known outside the node
// that dies: the writer (test/fixtures/mirror-ack) reports each line to a collector in the lab's
// client namespace only after its fsync returned. 20 runs: lab kill of the current PRIM, the
// survivor goes ALONE and restarts the writer, every acknowledged line is in its file (in order,
// no hole), the killed node returns as SECOND, next run kills the other one. Figures on '# ' lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import { sleep, stats, waitFor } from '../helpers/cluster.js';
import {
  ACK_FILE, ACK_MODULE, ackConfig, assertSequence, cat, Collector, hasVip, lines, mirrorStatus, primOnN1, waitStates, writerPid,
} from '../helpers/mirror-lab.js';

const RUNS = 20;

describe('mirror failover: lab kill of the PRIM under a writer with acknowledgements outside the node', { timeout: 240_000 }, () => {
  let lab: Lab | undefined;
  let collector: Collector | undefined;
  let config: string;
  beforeAll(async () => {
    config = ackConfig();
    lab = await Lab.up({ name: `mf${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
    collector = await Collector.start(lab);
  });
  afterAll(async () => {
    await collector?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test(`${RUNS} runs: kill the PRIM, the survivor runs alone with every acknowledged line`, async () => {
    const l = lab!;
    const c = collector!;
    await primOnN1(l, c);

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
    console.log(`# ${RUNS} runs, heartbeat 100 ms / timeout 500 ms: kill -> survivor ALONE min ${a.min} / median ${a.median} / max ${a.max} ms`);
    console.log(`# kill -> writer acknowledging again: min ${w.min} / median ${w.median} / max ${w.max} ms`);
    console.log(`# lines acknowledged per run: min ${k.min} / median ${k.median} / max ${k.max}; none lost in any run`);
    assert.ok(a.max < 8000, `every failover within a few seconds (max ${a.max} ms)`);

    // The last pair is in sync: the SECOND holds the PRIM's file.
    const v = await l.exec(prim, ['croft', 'mirror', 'verify', ACK_MODULE]);
    assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
  });
});
