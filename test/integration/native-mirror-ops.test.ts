// The mirror's operations through the native addon, from Node (issue 12, part 8): excluded paths
// (`exclude`) stay local, a rename across is EXDEV, a path escaping the directory is refused
// before anything is mounted; the link's counters for metrics (acked changes, the ack latency
// histogram in seconds); a reintegration's cap (`maxBytesPerS`) checked and applied. Real FUSE,
// a replica on loopback (run under the lock, as every test that mounts).
import { afterAll, beforeAll, describe, it } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MirrorMount, MirrorReplica, lazyUnmount } from '../../src/native/index.js';
import { CroftError } from '../../src/errors.js';

const KEY = Buffer.from('croft native mirror ops test key');

describe('native mirror operations: exclude, link counters, reintegration cap', () => {
  let root: string;
  const mounts: MirrorMount[] = [];
  const replicas: MirrorReplica[] = [];
  const mountDirs: string[] = [];

  function dirs(name: string): { a: string; b: string; state: string } {
    const a = path.join(root, `${name}-a`);
    const b = path.join(root, `${name}-b`);
    const state = path.join(root, `${name}-state`);
    for (const d of [a, b, state]) fs.mkdirSync(d);
    mountDirs.push(a);
    return { a, b, state };
  }

  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'crofttest-mirror-ops-'));
  });

  afterAll(async () => {
    for (const m of mounts) await m.unmount().catch(() => undefined);
    for (const d of mountDirs) await lazyUnmount(d).catch(() => undefined);
    for (const r of replicas) r.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('an excluded path stays local, a rename across is EXDEV; the link counts acked changes and their latency', async () => {
    const { a, b } = dirs('ex');
    const r = MirrorReplica.start({ dir: b, host: '127.0.0.1', port: 0, key: KEY });
    replicas.push(r);
    const m = await MirrorMount.mount({ dir: a, peer: { host: '127.0.0.1', port: r.port, key: KEY, ackLevel: 'received' }, failMode: 'alone', mode: 'every-change', exclude: ['tmp'] });
    mounts.push(m);
    await fsp.mkdir(path.join(a, 'tmp'));
    await fsp.writeFile(path.join(a, 'tmp', 'x'), 'local');
    await fsp.writeFile(path.join(a, 'y'), 'both');
    assert.equal(fs.readFileSync(path.join(b, 'y'), 'utf8'), 'both');
    assert.equal(fs.existsSync(path.join(b, 'tmp')), false, 'tmp is excluded');
    await assert.rejects(fsp.rename(path.join(a, 'tmp', 'x'), path.join(a, 'x')), { code: 'EXDEV' });
    const link = m.status().link;
    assert.ok(link.ackedOps >= 2, `acked ${link.ackedOps}`);
    const h = link.ackLatency;
    assert.equal(h.boundsSec.length + 1, h.cumulative.length);
    assert.equal(h.boundsSec[0], 0.0001);
    assert.equal(h.boundsSec.at(-1), 2.5);
    assert.equal(h.cumulative.at(-1), h.count);
    assert.ok(h.count >= 2 && h.sumSec > 0 && h.sumSec < h.count * 2.5);
    await m.unmount();
  });

  it('an excluded path that escapes the directory is refused, nothing mounted', async () => {
    const { a } = dirs('bad');
    for (const bad of ['../etc', '/etc', 'a/../../b', '']) {
      await assert.rejects(MirrorMount.mount({ dir: a, failMode: 'alone', exclude: [bad] }), (e: unknown) => e instanceof CroftError && /excluded path/.test(e.message));
    }
    assert.equal(fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === a), false);
  });

  it('a capped reintegration takes at least its bytes over the cap; a bad cap is refused', async () => {
    const { a, b, state } = dirs('cap');
    const m = await MirrorMount.mount({ dir: a, failMode: 'alone', dirtyLog: { dir: state, zoneBytes: 65536 } });
    mounts.push(m);
    await m.clearDirty();
    await fsp.writeFile(path.join(a, 'big'), Buffer.alloc(3 * 1024 * 1024, 7));
    const r = MirrorReplica.start({ dir: b, host: '127.0.0.1', port: 0, key: KEY });
    replicas.push(r);
    const peer = { host: '127.0.0.1', port: r.port, key: KEY, ackLevel: 'received' as const };
    await assert.rejects(m.reintegrate({ peer, full: false, maxBytesPerS: 0 }), /maxBytesPerS/);
    const t0 = Date.now();
    const st = await m.reintegrate({ peer, full: false, maxBytesPerS: 2 * 1024 * 1024 });
    const secs = (Date.now() - t0) / 1000;
    console.log(`# 3 MiB reintegrated at 2 MiB/s through the binding: ${secs.toFixed(2)} s, ${st.bytesCopied} bytes`);
    assert.equal(st.bytesCopied, 3 * 1024 * 1024);
    assert.ok(secs >= 1.5, `${secs} s`);
    assert.deepEqual(fs.readFileSync(path.join(b, 'big')), Buffer.alloc(3 * 1024 * 1024, 7));
    await m.unmount();
  });
});
