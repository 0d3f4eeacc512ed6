// The source's reintegration run (mirror/reintegration-run.ts): a run the machine gave up while it
// read the dirty log starts no copy. After a swap, the new primary's first run was aborted during
// that read (its link fell while it mounted) and still started its copy 5 ms before the next run's:
// a copy nobody waited for, which makes the next one fail as busy when it connects first.
import assert from 'node:assert/strict';
import { describe, test } from 'vitest';
import type { MirrorDataPlanePort } from '../../mirror/effects.js';
import { ReintegrationRun } from '../../mirror/reintegration-run.js';
import { systemClock } from '../../src/clock.js';

function fakeDataPlane() {
  const calls: boolean[] = [];
  let release: () => void = () => {};
  const dp = {
    dirtyTrusted: () => true,
    dirtyBytesAsync: () => new Promise<number>((r) => { release = () => r(0); }),
    dirtyEntries: () => 0,
    reintegrate: async (full: boolean) => {
      calls.push(full);
      return [];
    },
    reintegrationStatus: () => null,
  } as unknown as MirrorDataPlanePort;
  return { dp, calls, release: () => release() };
}

const logs: string[] = [];
const log = { info: (_o: object, m?: string) => void logs.push(m ?? ''), warn: () => {}, error: () => {} };

describe('ReintegrationRun', () => {
  test('aborted while it reads the dirty log: no copy starts, the run is superseded', async () => {
    const f = fakeDataPlane();
    const run = new ReintegrationRun('m', 'n2', 'n1', f.dp, systemClock, log);
    const p = run.run(5, 4);
    run.abort();
    f.release();
    assert.equal(await p, 'superseded');
    assert.deepEqual(f.calls, [], 'no copy started for a run given up');
    assert.equal(logs.filter((m) => m.startsWith('reintegration of')).length, 0, 'nor logged as begun');
  });

  test('not aborted: the copy runs and the run is done', async () => {
    const f = fakeDataPlane();
    const run = new ReintegrationRun('m', 'n2', 'n1', f.dp, systemClock, log);
    const p = run.run(5, 4);
    f.release();
    assert.equal(await p, 'done');
    assert.deepEqual(f.calls, [false], 'one copy of the dirty zones');
    assert.equal(run.totals.done, 1);
  });
});
