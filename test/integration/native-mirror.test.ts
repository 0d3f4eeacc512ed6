// The mirror through the native addon, from Node: a MirrorReplica over dir B on 127.0.0.1 and a
// MirrorMount over dir A in this process (no lab: loopback only), real FUSE. Each change made
// through the mount must be in B when the call returns. Then: a wrong key, the peer lost (stopped,
// and frozen with SIGSTOP so that only the ack timeout can notice), unmount, and what is left of a
// mount after its process exits, is collected, or is killed.
import { describe, it, beforeAll, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/paths.js';
import { MirrorMount, MirrorReplica, lazyUnmount, type MirrorEvent } from '../../src/native/index.js';
import { CroftError } from '../../src/errors.js';

const run = promisify(execFile);
const KEY = Buffer.from('croft native mirror test key');
const nativeUrl = pathToFileURL(path.join(repoRoot, 'dist', 'src', 'native', 'index.js')).href;

function mounted(dir: string): boolean {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A node child running `code` (an ES module with `native` imported), with its stdout lines. */
function child(code: string, args: string[] = []): { proc: ChildProcess; lines: AsyncIterator<string> } {
  const src = `import * as native from ${JSON.stringify(nativeUrl)};\n${code}`;
  // stderr is dropped: one child ends on an uncaught exception on purpose.
  const proc = spawn(process.execPath, [...args, '--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'ignore'] });
  assert.ok(proc.stdout);
  const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  return { proc, lines };
}

async function nextLine(lines: AsyncIterator<string>): Promise<string> {
  const r = await lines.next();
  assert.ok(!r.done, 'the child ended without a line');
  return r.value;
}

function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  }
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('native mirror (FUSE mount in this process, replica on loopback)', () => {
  let root: string;
  const mounts: MirrorMount[] = [];
  const replicas: MirrorReplica[] = [];
  const children: ChildProcess[] = [];
  /** Every directory a mount may have been made over, detached in after() whatever happened. */
  const mountDirs: string[] = [];

  function dirs(name: string): { a: string; b: string } {
    const a = path.join(root, `${name}-a`);
    const b = path.join(root, `${name}-b`);
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    mountDirs.push(a);
    return { a, b };
  }

  function replica(b: string): MirrorReplica {
    const r = MirrorReplica.start({ dir: b, host: '127.0.0.1', port: 0, key: KEY });
    replicas.push(r);
    return r;
  }

  async function mount(a: string, port: number, ackTimeoutMs = 2000): Promise<MirrorMount> {
    const m = await MirrorMount.mount({
      dir: a,
      peer: { host: '127.0.0.1', port, key: KEY, ackLevel: 'received', ackTimeoutMs },
      failMode: 'alone',
    });
    mounts.push(m);
    return m;
  }

  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'crofttest-mirror-'));
  });

  afterAll(async () => {
    for (const p of children) {
      if (p.exitCode === null && p.signalCode === null && p.pid !== undefined) {
        process.kill(p.pid, 'SIGKILL');
        await exited(p);
      }
    }
    for (const m of mounts) await m.unmount().catch(() => undefined);
    for (const d of mountDirs) await lazyUnmount(d).catch(() => undefined);
    for (const r of replicas) r.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('replicates every change before the call returns, and counts it', async () => {
    const { a, b } = dirs('ops');
    // Both sides start in sync, as after a full sync.
    for (const d of [a, b]) fs.writeFileSync(path.join(d, 'old.txt'), 'existing\n', { mode: 0o644 });
    const r = replica(b);
    const m = await mount(a, r.port);
    assert.ok(mounted(a), 'the mirror is in /proc/mounts');
    const s0 = m.status();
    assert.equal(s0.mounted, true);
    assert.equal(s0.ackLevel, 'received');
    assert.equal(s0.failMode, 'alone');
    assert.equal(s0.link.connected, true);

    assert.equal(await fsp.readFile(path.join(a, 'old.txt'), 'utf8'), 'existing\n', 'the file from before the mount is visible');

    await fsp.writeFile(path.join(a, 'new.txt'), 'hello');
    assert.equal(fs.readFileSync(path.join(b, 'new.txt'), 'utf8'), 'hello');

    await fsp.appendFile(path.join(a, 'old.txt'), 'more\n');
    assert.equal(fs.readFileSync(path.join(b, 'old.txt'), 'utf8'), 'existing\nmore\n');

    const fh = await fsp.open(path.join(a, 'data.bin'), 'w', 0o600);
    try {
      const data = Buffer.alloc(256 * 1024, 7);
      await fh.write(data, 0, data.length, 0);
      await fh.sync();
      assert.deepEqual(fs.readFileSync(path.join(b, 'data.bin')), data, 'written and fsync\'d: in B');
      await fh.truncate(1000);
      await fh.datasync();
      assert.equal(fs.statSync(path.join(b, 'data.bin')).size, 1000);
    } finally {
      await fh.close();
    }

    await fsp.mkdir(path.join(a, 'sub'), { mode: 0o750 });
    assert.equal(fs.statSync(path.join(b, 'sub')).mode & 0o7777, 0o750);
    await fsp.rename(path.join(a, 'new.txt'), path.join(a, 'sub', 'moved.txt'));
    assert.ok(!fs.existsSync(path.join(b, 'new.txt')));
    assert.equal(fs.readFileSync(path.join(b, 'sub', 'moved.txt'), 'utf8'), 'hello');

    await fsp.symlink('sub/moved.txt', path.join(a, 'link'));
    assert.equal(fs.readlinkSync(path.join(b, 'link')), 'sub/moved.txt');

    await fsp.chmod(path.join(a, 'old.txt'), 0o640);
    assert.equal(fs.statSync(path.join(b, 'old.txt')).mode & 0o7777, 0o640);

    await fsp.link(path.join(a, 'old.txt'), path.join(a, 'hard'));
    assert.equal(fs.statSync(path.join(b, 'hard')).ino, fs.statSync(path.join(b, 'old.txt')).ino, 'a hard link in B too');

    // fs has no xattr call: python3 (installed by scripts/setup.sh) sets one through the mount.
    await run('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], "user.croft", b"v1")', path.join(a, 'old.txt')]);
    const { stdout } = await run('python3', ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], "user.croft").decode())', path.join(b, 'old.txt')]);
    assert.equal(stdout.trim(), 'v1');

    // Synchronous calls from the JS thread on a mount this process serves: the FUSE handlers are
    // Rust threads that never wait on JS, and the replica's threads ack without JS either.
    fs.writeFileSync(path.join(a, 'sync.txt'), 'from the JS thread');
    assert.equal(fs.readFileSync(path.join(b, 'sync.txt'), 'utf8'), 'from the JS thread');
    fs.unlinkSync(path.join(a, 'sync.txt'));
    assert.ok(!fs.existsSync(path.join(b, 'sync.txt')));

    await fsp.rm(path.join(a, 'link'));
    assert.ok(!fs.existsSync(path.join(b, 'link')) && !fs.lstatSync(path.join(b, 'hard')).isSymbolicLink());

    const s1 = m.status();
    assert.equal(s1.link.connected, true);
    assert.ok(s1.link.sentSeq >= 15, `sentSeq ${s1.link.sentSeq}`);
    assert.equal(s1.link.ackedSeq, s1.link.sentSeq, 'every change acked');
    assert.ok(s1.link.bytesSent > 256 * 1024, `bytesSent ${s1.link.bytesSent}`);
    assert.equal(s1.link.aloneOps, 0);
    assert.deepEqual(m.dirtyPaths(), []);
    const rs = r.status();
    assert.equal(rs.sessions, 1);
    assert.equal(rs.connected, true);
    assert.ok(rs.appliedOps >= s1.link.sentSeq, `appliedOps ${rs.appliedOps}`);
    assert.equal(rs.ackedSeq, s1.link.sentSeq);

    await m.unmount();
    assert.ok(!mounted(a), 'no fuse mount left over A');
    const s2 = m.status();
    assert.equal(s2.mounted, false);
    assert.equal(s2.link.sentSeq, s1.link.sentSeq, 'the last counters after unmount');
    await m.unmount(); // idempotent
    // Unmounted, A is the plain directory again, with the same tree as B.
    assert.equal(fs.readFileSync(path.join(a, 'sub', 'moved.txt'), 'utf8'), 'hello');
    assert.deepEqual(fs.readdirSync(a).sort(), fs.readdirSync(b).sort());
  });

  it('xattrs: false refuses every extended-attribute call (EOPNOTSUPP), the rest replicates; the default serves them', async () => {
    // Python's os.*xattr: the syscalls themselves, from another process (the mount's handlers run here).
    const py = `import os, sys, errno
f = sys.argv[1]
out = []
for name, call in [('set', lambda: os.setxattr(f, 'user.croft', b'1')), ('get', lambda: os.getxattr(f, 'user.croft')),
                   ('list', lambda: os.listxattr(f)), ('remove', lambda: os.removexattr(f, 'user.croft'))]:
    try:
        call(); out.append(name + ' ok')
    except OSError as e:
        out.append(name + ' ' + errno.errorcode[e.errno])
print(', '.join(out))`;
    for (const xattrs of [false, true]) {
      const { a, b } = dirs(`xattrs-${xattrs}`);
      const r = replica(b);
      const m = await MirrorMount.mount({ dir: a, peer: { host: '127.0.0.1', port: r.port, key: KEY, ackLevel: 'received' }, failMode: 'alone', xattrs });
      mounts.push(m);
      await fsp.writeFile(path.join(a, 'f'), 'data');
      const { stdout } = await run('/usr/bin/python3', ['-c', py, path.join(a, 'f')]);
      // EOPNOTSUPP (95 on Linux, the same number as ENOTSUP, which is the name Python gives it).
      assert.equal(stdout.trim(), xattrs ? 'set ok, get ok, list ok, remove ok' : 'set ENOTSUP, get ENOTSUP, list ENOTSUP, remove ENOTSUP');
      await fsp.writeFile(path.join(a, 'f'), 'data, rewritten');
      await m.unmount();
      assert.equal(fs.readFileSync(path.join(b, 'f'), 'utf8'), 'data, rewritten');
    }
  });

  it('a wrong key is CROFT_ERR_MIRROR_PEER_AUTH and leaves nothing mounted', async () => {
    const { a, b } = dirs('key');
    const r = replica(b);
    await assert.rejects(
      MirrorMount.mount({
        dir: a,
        peer: { host: '127.0.0.1', port: r.port, key: Buffer.from('not the cluster key'), ackLevel: 'durable' },
      }),
      (err: unknown) => {
        assert.ok(err instanceof CroftError, `a CroftError, got ${String(err)}`);
        assert.equal(err.code, 'CROFT_ERR_MIRROR_PEER_AUTH');
        assert.match(err.message, /same cluster key/);
        return true;
      },
    );
    assert.ok(!mounted(a), 'nothing mounted over A');
    await waitFor('the refusal counted', () => r.status().refused === 1, 5000);
    assert.equal(r.status().sessions, 0);
  });

  it('other mount errors carry their code: no directory, no peer listening, no replica directory', async () => {
    await assert.rejects(MirrorMount.mount({ dir: path.join(root, 'missing') }), { name: 'CroftError', code: 'CROFT_ERR_MIRROR_DIR' });
    const { a } = dirs('unreach');
    // A port nothing listens on: bind one, close it, connect there.
    const r = replica(path.join(root, 'unreach-b'));
    const port = r.port;
    r.stop();
    await assert.rejects(
      MirrorMount.mount({ dir: a, peer: { host: '127.0.0.1', port, key: KEY, ackLevel: 'received', connectTimeoutMs: 1000 } }),
      { name: 'CroftError', code: 'CROFT_ERR_MIRROR_PEER_UNREACHABLE' },
    );
    assert.ok(!mounted(a));
    assert.throws(() => MirrorReplica.start({ dir: path.join(root, 'missing'), host: '127.0.0.1', port: 0, key: KEY }), {
      name: 'CroftError',
      code: 'CROFT_ERR_MIRROR_REPLICA',
    });
  });

  it('replica stopped while mounted, failMode alone: writes go on, PeerLost is reported, the file is dirty', async () => {
    const { a, b } = dirs('stop');
    const r = replica(b);
    const ackTimeoutMs = 500;
    const m = await mount(a, r.port, ackTimeoutMs);
    const events: MirrorEvent[] = [];
    m.onEvent((e) => events.push(e));
    await fsp.writeFile(path.join(a, 'before.txt'), 'acked by the peer');
    assert.equal(fs.readFileSync(path.join(b, 'before.txt'), 'utf8'), 'acked by the peer');

    r.stop();
    const t0 = Date.now();
    await fsp.writeFile(path.join(a, 'after.txt'), 'alone');
    const elapsedMs = Date.now() - t0;
    assert.ok(elapsedMs < ackTimeoutMs + 1500, `the write returned after ${elapsedMs} ms`);
    assert.equal(fs.readFileSync(path.join(a, 'after.txt'), 'utf8'), 'alone', 'applied locally');
    assert.ok(!fs.existsSync(path.join(b, 'after.txt')), 'not on the stopped replica');

    await waitFor('the PeerLost event', () => events.length > 0, 5000);
    assert.equal(events.length, 1, 'lost once');
    assert.equal(events[0]?.kind, 'peerLost');
    assert.ok(m.dirtyPaths().includes('after.txt'), `dirty: ${m.dirtyPaths().join(', ')}`);
    assert.ok(!m.dirtyPaths().includes('before.txt'));
    const s = m.status();
    assert.equal(s.link.connected, false);
    assert.equal(s.link.lostReason, events[0]?.reason);
    assert.ok(s.link.aloneOps >= 1);

    await m.unmount();
    assert.ok(!mounted(a));
  });

  it('a frozen replica (SIGSTOP): the write returns after about ackTimeoutMs, as a dirty change', async () => {
    const { a, b } = dirs('frozen');
    // The replica in a child process, so that SIGSTOP freezes it with its socket still open: only
    // the ack timeout can notice.
    const c = child(
      `const r = native.MirrorReplica.start({ dir: ${JSON.stringify(b)}, host: '127.0.0.1', port: 0, key: Buffer.from(${JSON.stringify(KEY.toString())}) });
       console.log(String(r.port));
       // Referenced from the timer: a replica collected by the GC stops.
       setInterval(() => r.status(), 1000);`,
    );
    children.push(c.proc);
    const port = Number(await nextLine(c.lines));
    // 1 s, not less: on a loaded 2-core machine an ack of the writes before the freeze can take a
    // few hundred ms, and a link lost then makes the frozen write return at once (a fresh clone's
    // run saw it return after 3 ms with 400 ms).
    const ackTimeoutMs = 1000;
    const m = await mount(a, port, ackTimeoutMs);
    const events: MirrorEvent[] = [];
    m.onEvent((e) => events.push(e));
    await fsp.writeFile(path.join(a, 'before.txt'), 'acked');
    assert.equal(fs.readFileSync(path.join(b, 'before.txt'), 'utf8'), 'acked');
    assert.ok(m.status().link.connected && events.length === 0, `the link is up before the freeze (events: ${JSON.stringify(events)})`);

    assert.ok(c.proc.pid !== undefined);
    process.kill(c.proc.pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      await fsp.writeFile(path.join(a, 'frozen.txt'), 'alone');
      const elapsedMs = Date.now() - t0;
      assert.ok(elapsedMs >= ackTimeoutMs - 50, `returned after ${elapsedMs} ms, before the ack timeout`);
      assert.ok(elapsedMs < ackTimeoutMs + 1500, `returned after ${elapsedMs} ms`);
      await waitFor('the PeerLost event', () => events.length > 0, 5000);
      assert.match(events[0]?.reason ?? '', new RegExp(`no acknowledgement within ${ackTimeoutMs} ms`));
      assert.ok(m.dirtyPaths().includes('frozen.txt'), `dirty: ${m.dirtyPaths().join(', ')}`);
    } finally {
      process.kill(c.proc.pid, 'SIGKILL');
      await exited(c.proc);
    }
    await m.unmount();
    assert.ok(!mounted(a));
  });

  it("failMode block: after dropPeer() a change waits until setFailMode('alone') releases it as dirty", async () => {
    const { a, b } = dirs('block');
    const r = replica(b);
    const m = await MirrorMount.mount({
      dir: a,
      peer: { host: '127.0.0.1', port: r.port, key: KEY, ackLevel: 'durable' },
      failMode: 'block',
    });
    mounts.push(m);
    assert.equal(m.status().failMode, 'block');
    assert.equal(m.status().ackLevel, 'durable');
    await fsp.writeFile(path.join(a, 'before.txt'), 'acked');
    assert.equal(fs.readFileSync(path.join(b, 'before.txt'), 'utf8'), 'acked');

    m.dropPeer('membership saw the peer die');
    // Registered after the loss: the event from before is delivered too.
    const events: MirrorEvent[] = [];
    m.onEvent((e) => events.push(e));
    await waitFor('the PeerLost event', () => events.length > 0, 5000);
    assert.deepEqual(events, [{ kind: 'peerLost', reason: 'membership saw the peer die' }]);

    // Asynchronous (libuv pool): under 'block' a sync call would hold the JS thread that must
    // call setFailMode().
    let settled = false;
    const write = fsp.writeFile(path.join(a, 'blocked.txt'), 'waits').finally(() => {
      settled = true;
    });
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(settled, false, 'the change waits while the fail mode is block');
    m.setFailMode('alone');
    await write;
    assert.equal(m.status().failMode, 'alone');
    assert.ok(m.dirtyPaths().includes('blocked.txt'), `dirty: ${m.dirtyPaths().join(', ')}`);
    assert.ok(!fs.existsSync(path.join(b, 'blocked.txt')));
    await m.unmount();
    assert.ok(!mounted(a));
  });

  it('alone with a dirty log: exactly the zones and entries written, durable across the mount, cleared', async () => {
    const a = path.join(root, 'dlog-a');
    const logDir = path.join(root, 'dlog-log');
    fs.mkdirSync(a);
    mountDirs.push(a);
    const zoneBytes = 64 * 1024;
    const MiB = 1024 * 1024;
    // A file from before the mount (as after a full sync): only the zones written through it are dirty.
    fs.writeFileSync(path.join(a, 'big.bin'), '');
    fs.truncateSync(path.join(a, 'big.bin'), 6 * MiB);
    const m = await MirrorMount.mount({ dir: a, dirtyLog: { dir: logDir, zoneBytes } });
    mounts.push(m);
    assert.equal(m.dirtyLogDir, logDir);
    assert.deepEqual(m.dirtyEntries(), []);
    assert.equal(m.dirtyTrusted(), false, 'a new log may miss what changed before it existed');

    // The log is locked while the mount holds it.
    await assert.rejects(MirrorMount.openDirtyLog(logDir, zoneBytes), (err: unknown) => {
      assert.ok(err instanceof CroftError, `a CroftError, got ${String(err)}`);
      assert.equal(err.code, 'CROFT_ERR_MIRROR_DIRTY_LOG');
      assert.match(err.message, /already open/);
      return true;
    });

    const fh = await fsp.open(path.join(a, 'big.bin'), 'r+');
    try {
      await fh.write(Buffer.alloc(100, 1), 0, 100, 0);
      await fh.write(Buffer.alloc(100, 2), 0, 100, 5 * MiB);
    } finally {
      await fh.close();
    }
    await fsp.writeFile(path.join(a, 'new.txt'), 'hello');
    await fsp.rename(path.join(a, 'new.txt'), path.join(a, 'renamed.txt'));

    const expected = [
      { path: 'big.bin', zones: [[0, zoneBytes], [5 * MiB, zoneBytes]], entryChanged: false },
      // Both sides of a rename: whatever lives there now is copied whole (len -1: to the end).
      { path: 'new.txt', zones: [[0, -1]], entryChanged: true },
      { path: 'renamed.txt', zones: [[0, -1]], entryChanged: true },
    ];
    assert.deepEqual(m.dirtyEntries(), expected);
    assert.deepEqual(m.dirtyPaths(), ['big.bin', 'new.txt', 'renamed.txt']);
    // Two zones of big.bin, the 5 bytes of renamed.txt; new.txt is gone (removed, nothing to copy).
    assert.equal(m.dirtyBytes(), 2 * zoneBytes + 5);
    assert.equal(await m.dirtyBytesAsync(), 2 * zoneBytes + 5, 'the same off the JS thread');
    assert.ok(m.status().link.aloneOps >= 4, `aloneOps ${m.status().link.aloneOps}`);

    await m.unmount();
    assert.ok(!mounted(a));
    assert.throws(() => m.dirtyEntries(), /after unmount/);

    const log = await MirrorMount.openDirtyLog(logDir, zoneBytes);
    try {
      assert.deepEqual(log.dirtyEntries(), expected, 'the same entries from disk, without a mount');
      assert.deepEqual(log.dirtyPaths(), ['big.bin', 'new.txt', 'renamed.txt']);
      assert.equal(log.dirtyBytes(a), 2 * zoneBytes + 5);
      assert.equal(log.dirtyTrusted(), false);
      await log.clearDirty();
      assert.deepEqual(log.dirtyEntries(), []);
      assert.equal(log.dirtyTrusted(), true);
    } finally {
      log.close();
    }
    // Cleared durably: the next opener finds it empty and trusted.
    const again = await MirrorMount.openDirtyLog(logDir, zoneBytes);
    try {
      assert.deepEqual(again.dirtyEntries(), []);
      assert.equal(again.dirtyTrusted(), true);
      assert.equal(again.dirtyBytes(a), 0);
    } finally {
      again.close();
    }
    await assert.rejects(MirrorMount.openDirtyLog(path.join(a, 'big.bin'), zoneBytes), { name: 'CroftError', code: 'CROFT_ERR_MIRROR_DIRTY_LOG' });
  });

  it('a MirrorMount collected without unmount() is detached', async () => {
    const { a } = dirs('gc');
    const gc = child(
      `import fs from 'node:fs';
       const dir = ${JSON.stringify(a)};
       const isMounted = () => fs.readFileSync('/proc/mounts', 'utf8').split('\\n').some((l) => l.split(' ')[1] === dir);
       let m = await native.MirrorMount.mount({ dir });
       console.log(isMounted() ? 'mounted' : 'not mounted');
       m = undefined;
       for (let i = 0; i < 100 && isMounted(); i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
       console.log(isMounted() ? 'still mounted' : 'detached');`,
      ['--expose-gc'],
    );
    children.push(gc.proc);
    assert.equal(await nextLine(gc.lines), 'mounted');
    assert.equal(await nextLine(gc.lines), 'detached');
    assert.equal((await exited(gc.proc)).code, 0);
    assert.ok(!mounted(a));
  });

  for (const [how, ending] of [
    ['the event loop ends', ''],
    ['process.exit()', 'process.exit(3);'],
    ['an uncaught exception', "throw new Error('boom');"],
  ] as const) {
    it(`a mount still live when the process exits (${how}) is detached`, async () => {
      const { a } = dirs(`exit${mountDirs.length}`);
      const c = child(
        `const m = await native.MirrorMount.mount({ dir: ${JSON.stringify(a)} });
         globalThis.keep = m;
         console.log('mounted');
         ${ending}`,
      );
      children.push(c.proc);
      assert.equal(await nextLine(c.lines), 'mounted');
      const end = await exited(c.proc);
      assert.equal(end.signal, null);
      assert.ok(!mounted(a), `a mount is left over ${a} after ${how}`);
    });
  }

  it('after SIGKILL the dead mount stays (ENOTCONN) until lazyUnmount()', async () => {
    const { a } = dirs('kill');
    const c = child(
      `const m = await native.MirrorMount.mount({ dir: ${JSON.stringify(a)} });
       console.log('mounted');
       setInterval(() => m.status(), 1000);`,
    );
    children.push(c.proc);
    assert.equal(await nextLine(c.lines), 'mounted');
    assert.ok(mounted(a));
    assert.ok(c.proc.pid !== undefined);
    process.kill(c.proc.pid, 'SIGKILL');
    await exited(c.proc);
    assert.ok(mounted(a), 'SIGKILL runs no cleanup: the mount stays');
    await assert.rejects(fsp.stat(path.join(a, 'x')), { code: 'ENOTCONN' });
    await lazyUnmount(a);
    assert.ok(!mounted(a), 'lazyUnmount() removed it');
    await lazyUnmount(a); // quiet when nothing is mounted
  });
});
