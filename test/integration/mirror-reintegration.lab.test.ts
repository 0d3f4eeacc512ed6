// Reintegration from the dirty logs in a real 2-node lab, after (a) a clean `croft stop` of the
// SECOND, (b) a lab kill of the SECOND, (c) a lab kill of the PRIM itself (it returns as target).
// While the peer is away the writer keeps appending (test/fixtures/mirror-ack) and 4 KiB blocks of
// a 32 MiB file are rewritten at scattered offsets; on return: bytes sent <= 1.2 x the dirty
// zones, not a full sync, the writer keeps acknowledging through it, both trees identical after
// (croft mirror verify, and checksums of the files on both nodes). Figures on '# ' lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { LastReintegration } from '../../mirror/runtime.js';
import { Lab } from '../../top/lab/index.js';
import { sleep, waitFor } from '../helpers/cluster.js';
import {
  ACK_DIR, ACK_FILE, ACK_MODULE, ackConfig, assertSequence, cat, Collector, lines, mirrorStatus, waitStates, writerPid,
} from '../helpers/mirror-lab.js';

const BIG = `${ACK_DIR}/big.bin`;
const BIG_BYTES = 32 * 1024 * 1024;
const ZONE_BYTES = 65_536;
const BLOCKS = 100; // 4 KiB blocks rewritten while the peer is away: at most 100 zones of 64 KiB dirty

/** Rewrites `count` 4 KiB blocks of the big file at random aligned offsets, fsync'd. */
async function scatter(lab: Lab, node: string, count: number): Promise<void> {
  const py = `import os,random\nfd=os.open(${JSON.stringify(BIG)},os.O_WRONLY)\nfor i in range(${count}):\n  os.pwrite(fd,os.urandom(4096),random.randrange(${BIG_BYTES / 4096})*4096)\nos.fsync(fd)\n`;
  const r = await lab.exec(node, ['python3', '-c', py]);
  assert.equal(r.code, 0, `scatter on ${node}: ${r.stderr}`);
}

async function sums(lab: Lab, node: string): Promise<string> {
  const r = await lab.exec(node, ['sh', '-c', `cd ${ACK_DIR} && sha256sum big.bin lines.txt`]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** Both nodes hold the same files (writer frozen on the PRIM while they are read), and verify agrees. */
async function assertIdentical(lab: Lab, prim: string, second: string, what: string): Promise<void> {
  const v = await lab.exec(prim, ['croft', 'mirror', 'verify', ACK_MODULE]);
  assert.equal(v.code, 0, `${what}: croft mirror verify: ${v.stdout}${v.stderr}`);
  const pid = await writerPid(lab, prim);
  assert.ok(pid, `${what}: the writer runs on ${prim}`);
  await lab.exec(prim, ['kill', '-STOP', String(pid)]);
  try {
    await sleep(100);
    const a = await sums(lab, prim);
    assert.equal(await sums(lab, second), a, `${what}: ${second} holds the same big.bin and lines.txt as ${prim}`);
    assertSequence(lines(await cat(lab, prim, ACK_FILE)), `${what}: lines on ${prim}`);
  } finally {
    await lab.exec(prim, ['kill', '-CONT', String(pid)]);
  }
}

describe('mirror reintegration from the dirty logs: after a stop, a kill of the SECOND, a kill of the PRIM', { timeout: 240_000 }, () => {
  let lab: Lab | undefined;
  let collector: Collector | undefined;
  let config: string;
  beforeAll(async () => {
    config = ackConfig(`zone_bytes: ${ZONE_BYTES}\n`);
    lab = await Lab.up({ name: `mr${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
    collector = await Collector.start(lab);
  });
  afterAll(async () => {
    await collector?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  /**
   * The peer is away (`away` done by the caller); the writer runs on `prim`, which also rewrites
   * scattered blocks; then `comeBack`, and the reintegration is checked. Returns its figures.
   */
  async function awayAndBack(what: string, prim: string, second: string, away: () => Promise<void>, comeBack: () => Promise<void>, extraDirty = 0): Promise<LastReintegration> {
    const l = lab!;
    const c = collector!;
    const before = (await mirrorStatus(l, prim))?.lastReintegration?.finishedAtMs ?? 0;
    await away();
    await waitStates(l, { [prim]: 'ALONE' }, 15_000);
    await waitFor(`writer acknowledging on ${prim}`, async () => (await writerPid(l, prim)) !== null && c.maxAcked(prim) > 0, 15_000);
    const ackedBefore = c.maxAcked();
    await scatter(l, prim, BLOCKS);
    await sleep(1500); // the writer goes on alone
    // Status computes the dirty bytes off the JS thread and shows the last value computed.
    await waitFor(`${what}: ${prim} shows dirty bytes`, async () => ((await mirrorStatus(l, prim))?.dirtyBytes ?? 0) > 0, 5000);
    const st = await mirrorStatus(l, prim);
    const pid = await writerPid(l, prim);
    assert.ok(st?.dirtyBytes && st.dirtyBytes > 0, `${what}: ${prim} tracks dirty bytes alone (${st?.dirtyBytes})`);
    assert.equal(st.dirtyTrusted, true, `${what}: the dirty log is trusted`);
    const t0 = Date.now();
    await comeBack();
    await waitStates(l, { [prim]: 'PRIM', [second]: 'SECOND' }, 30_000);
    const backMs = Date.now() - t0;
    const last = (await mirrorStatus(l, prim))?.lastReintegration;
    assert.ok(last && last.finishedAtMs > before, `${what}: ${prim} reports this reintegration`);
    assert.equal(last.full, false, `${what}: the reintegration used the dirty log (not a full sync)`);
    // The application ran through it: same writer process, acknowledgements before, during, after.
    assert.equal(await writerPid(l, prim), pid, `${what}: the writer on ${prim} was not restarted`);
    const startMs = last.finishedAtMs - last.durationMs;
    await waitFor('acknowledgements after the reintegration', () => c.reports().some((r) => r.atMs > last.finishedAtMs + 300), 5000);
    const around = c.reports().filter((r) => r.node === prim && r.atMs >= startMs - 1000 && r.atMs <= last.finishedAtMs + 300);
    let gapMs = 0;
    for (let i = 1; i < around.length; i++) gapMs = Math.max(gapMs, around[i]!.atMs - around[i - 1]!.atMs);
    const during = around.filter((r) => r.atMs >= startMs && r.atMs <= last.finishedAtMs).length;
    assert.ok(around.length > 0 && gapMs < 1000, `${what}: the writer kept acknowledging across the reintegration (longest pause ${gapMs} ms)`);
    const bound = 1.2 * (last.dirtyBytesAtStart + extraDirty);
    console.log(`# ${what}: back -> PRIM+SECOND in ${backMs} ms; reintegration from the dirty log: ${last.bytesSent} bytes sent (${last.bytesCopied} file bytes) for ${last.dirtyBytesAtStart} dirty bytes in ${last.dirtyEntriesAtStart} entries${extraDirty ? ` (+ at most ${extraDirty} from the returning node's own log)` : ''}, ${last.durationMs} ms; big file ${BIG_BYTES} bytes; writer: ${c.maxAcked() - ackedBefore} lines acknowledged while away and after, ${during} during the reintegration, longest pause ${gapMs} ms`);
    assert.ok(last.bytesSent <= bound, `${what}: ${last.bytesSent} bytes sent <= 1.2 x ${last.dirtyBytesAtStart + extraDirty} dirty bytes`);
    assert.ok(last.dirtyBytesAtStart < BIG_BYTES / 2, `${what}: the dirty zones (${last.dirtyBytesAtStart}) are much less than the file sizes`);
    assert.ok(last.dirtyBytesAtStart >= 4096 * 10, `${what}: the scattered writes made the dirty zones significant (${last.dirtyBytesAtStart})`);
    await assertIdentical(l, prim, second, what);
    return last;
  }

  test('setup: n1 PRIM, n2 SECOND, a 32 MiB file on both', async () => {
    const l = lab!;
    await waitStates(l, { n1: 'WAIT', n2: 'WAIT' });
    assert.equal((await l.exec('n1', ['croft', 'prim', ACK_MODULE])).code, 0);
    await waitStates(l, { n1: 'PRIM', n2: 'SECOND' });
    const r = await l.exec('n1', ['dd', 'if=/dev/urandom', `of=${BIG}`, 'bs=1M', `count=${BIG_BYTES >> 20}`, 'conv=fsync', 'status=none']);
    assert.equal(r.code, 0, r.stderr);
    await assertIdentical(l, 'n1', 'n2', 'setup');
    // The activity log keeps acknowledged zones up to 5 s (cleared every 5 s once acked): let the
    // initial 32 MiB leave it, so that what follows measures only the writes made alone.
    await sleep(11_000);
  });

  test('(a) clean croft stop of the SECOND, then croft start', async () => {
    const l = lab!;
    await awayAndBack('(a) stop/start of n2', 'n1', 'n2',
      async () => { assert.equal((await l.exec('n2', ['croft', 'stop', ACK_MODULE])).code, 0); await waitStates(l, { n2: 'STOP' }); },
      async () => { assert.equal((await l.exec('n2', ['croft', 'start', ACK_MODULE])).code, 0); });
  });

  test('(b) lab kill of the SECOND, then its daemon restarted', async () => {
    const l = lab!;
    await sleep(11_000); // (a)'s zones leave the activity log
    await awayAndBack('(b) lab kill of n2', 'n1', 'n2', async () => { await l.kill('n2'); }, async () => { await l.start('n2'); });
  });

  test('(c) lab kill of the PRIM: the survivor writes alone, the killed node returns as target', async () => {
    const l = lab!;
    // n1's own log is cleared every 5 s once acknowledged: wait, so that it holds only the
    // writer's last lines (lines.txt is the only file n1 changes from here on).
    await sleep(11_000);
    const linesBytes = (await cat(l, 'n1', ACK_FILE)).length;
    await awayAndBack('(c) lab kill of the PRIM n1', 'n2', 'n1', async () => { await l.kill('n1'); }, async () => { await l.start('n1'); }, linesBytes);
  });

  test('(d) croft mirror verify finds a byte written directly on the SECOND; a stop/start of the SECOND repairs it (full sync)', async () => {
    const l = lab!;
    // After (c): n2 PRIM, n1 SECOND. n1 has no mount: its replicated directory is a plain folder.
    const inject = await l.exec('n1', ['sh', '-c', `printf X | dd of=${BIG} bs=1 seek=1234567 conv=notrunc status=none`]);
    assert.equal(inject.code, 0, inject.stderr);
    const v = await l.exec('n2', ['croft', 'mirror', 'verify', ACK_MODULE]);
    assert.equal(v.code, 1, `verify exits 1 on a divergence: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /^ {2}\S*\/big\.bin: content differs/m, 'verify names the diverged file');
    console.log(`# (d) verify after a byte written on the SECOND: exit ${v.code}: ${v.stdout.trim().replace(/\n\s*/g, ' | ')}`);

    const t0 = Date.now();
    assert.equal((await l.exec('n1', ['croft', 'stop', ACK_MODULE])).code, 0);
    await waitStates(l, { n1: 'STOP', n2: 'ALONE' });
    assert.equal((await l.exec('n1', ['croft', 'start', ACK_MODULE])).code, 0);
    await waitStates(l, { n2: 'PRIM', n1: 'SECOND' }, 30_000);
    const last = (await mirrorStatus(l, 'n2'))?.lastReintegration;
    assert.ok(last && last.finishedAtMs > t0, 'n2 reports the reintegration after the restart of n1');
    assert.equal(last.full, true, 'after a verify that found a divergence, the next reintegration compares whole trees');
    console.log(`# (d) stop/start of n1 -> full sync: ${last.bytesSent} bytes sent (${last.bytesCopied} file bytes) in ${last.durationMs} ms; then verify exit 0`);
    await assertIdentical(l, 'n2', 'n1', '(d) after the repair');
  });
});
