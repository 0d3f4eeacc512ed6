// No false failover under load: a 3-node lab at interval 100 ms / timeout 250 ms (the heartbeat the
// farm bench compares with keepalived's advert_int 0.1 s) while both cores spin and every daemon
// collects garbage heavily (bench/farm/soak.ts; bench/farm/run --only soak runs it for 5 minutes).
// Before the heartbeat pump (src/native/heartbeat.ts) a GC pause longer than the timeout, in the
// sender or the receiver, was enough to mark a live peer down.
import assert from 'node:assert/strict';
import { describe, test } from 'vitest';
import { soak, soakReport } from '../../bench/farm/soak.js';

const DURATION_S = 45;

describe('membership soak', { timeout: 180_000 }, () => {
  test(`${DURATION_S} s of full CPU load and heavy GC in the daemons: no peer marked down, no view change`, async () => {
    const r = await soak({ name: `ms${process.pid % 100000}`, durationS: DURATION_S });
    for (const line of soakReport(r)) console.log(line);
    // The load was real: the spinning processes got a large share of the machine, and every daemon
    // ran long collections (the preload reports them).
    assert.ok(r.hogShare >= 0.35, `the spinning processes got only ${(r.hogShare * 100).toFixed(0)} % of the CPU`);
    for (const [n, g] of Object.entries(r.gc)) {
      assert.ok(g && g.collections >= 20, `${n}: the GC pressure preload reported ${JSON.stringify(g)}`);
    }
    assert.deepEqual(r.peerDowns, { n1: 0, n2: 0, n3: 0 });
    assert.deepEqual(r.viewChanges, { n1: 0, n2: 0, n3: 0 });
  });
});
