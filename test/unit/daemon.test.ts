// The daemon runs a mirror module with a MirrorRuntime, refuses nodes it does not know, and exits
// on SIGTERM whatever its stdout does.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { CroftError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { MirrorRuntime } from '../../mirror/runtime.js';
import { freePort } from '../helpers/net.js';
import { croftBin } from '../helpers/paths.js';

test('a kind: mirror module gets a mirror runtime (prim/second/swap, mirror status); an unknown node is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-daemon-'));
  try {
    fs.mkdirSync(path.join(dir, 'modules'));
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), `name: d\nkey: "${'k'.repeat(40)}"\nnodes:\n  n1: { addresses: [127.0.0.1] }\n  n2: { addresses: [127.0.0.2] }\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'modules', 'db.yaml'), 'kind: mirror\nvip: none\ndirs: [/srv/db]\n');
    const config = loadConfig(dir);
    const daemon = new Daemon(config, 'n1', silentLogger());
    const rt = daemon.mirror('db');
    assert.ok(rt instanceof MirrorRuntime);
    assert.equal(rt.peer, 'n2');
    assert.equal(rt.state(), 'STOP');
    assert.equal(rt.mirrorStatus().data, 'unknown');
    assert.throws(() => daemon.mirrorCommand('nope', 'prim', 'test'), (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_UNKNOWN_MODULE');
    assert.throws(() => new Daemon(config, 'n9', silentLogger()), (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_UNKNOWN_NODE');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A config dir for one real daemon on loopback (node n1), its API on `apiPort`. */
async function daemonConfig(dir: string, apiPort: number): Promise<string> {
  const socketPath = path.join(dir, 'run', 'api.sock');
  fs.mkdirSync(path.join(dir, 'modules'));
  fs.writeFileSync(path.join(dir, 'cluster.yaml'), [
    'name: d',
    `key: "${'k'.repeat(40)}"`,
    `heartbeat: { port: ${await freePort()} }`,
    'nodes:',
    '  n1: { addresses: [127.0.0.1] }',
    '  n2: { addresses: [127.0.0.2] }',
    `api: { host: 127.0.0.1, port: ${apiPort}, socket: ${socketPath} }`,
    `state_dir: ${path.join(dir, 'state')}`, // the daemon saves its membership state there, not in /var/lib/croft
  ].join('\n'), { mode: 0o600 });
  return socketPath;
}

/**
 * A FIFO filled to the brim, opened blocking for the daemon's stdout: every write it makes would
 * block (the reader is stuck), as a pipe to a hung log collector does. Returns [filler, stdout] fds.
 */
function stuckPipe(dir: string): { fds: number[]; stdout: number; filled: number } {
  const fifo = path.join(dir, 'stdout.fifo');
  execFileSync('mkfifo', [fifo]);
  const filler = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const chunk = Buffer.alloc(4096, 0x2e);
  let filled = 0;
  for (;;) {
    try { filled += fs.writeSync(filler, chunk); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break; throw e; }
  }
  const stdout = fs.openSync(fifo, 'r+');
  return { fds: [filler, stdout], stdout, filled };
}

function startDaemon(dir: string, stdout: number): { child: ChildProcess; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, [croftBin, 'daemon', '--config', dir, '--node', 'n1'],
    { stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, CROFT_LOG_LEVEL: 'debug' } });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);

test('finding 10: a daemon whose stdout is a full pipe nobody reads still exits on SIGTERM within a bound', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-daemon-'));
  let child: ChildProcess | null = null;
  const fds: number[] = [];
  try {
    const socketPath = await daemonConfig(dir, await freePort());
    const pipe = stuckPipe(dir);
    fds.push(...pipe.fds);
    const d = startDaemon(dir, pipe.stdout);
    child = d.child;
    // Up when its local API answers.
    const t0 = Date.now();
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const req = http.get({ socketPath, path: '/health/none', headers: { host: 'localhost' } }, (res) => { res.resume(); resolve(true); });
        req.on('error', () => resolve(false));
      });
      if (ok) break;
      assert.ok(Date.now() - t0 < 15_000, `the daemon did not come up: ${d.stderr()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const tTerm = Date.now();
    child.kill('SIGTERM');
    const code = await within(d.exited, 10_000);
    const ms = Date.now() - tTerm;
    console.log(`# stdout pipe full (${pipe.filled} bytes, never read): exit ${code} ${ms} ms after SIGTERM`);
    assert.notEqual(code, 'hung', `still running 10 s after SIGTERM; stderr: ${d.stderr()}`);
    assert.equal(code, 0, d.stderr());
    assert.ok(ms < 5_000, `${ms} ms`);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const fd of fds) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('finding 10: a daemon that cannot serve (API port taken) with a stuck stdout exits 1 within a bound, saying why', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-daemon-'));
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  let child: ChildProcess | null = null;
  const fds: number[] = [];
  try {
    await daemonConfig(dir, (taken.address() as net.AddressInfo).port);
    const pipe = stuckPipe(dir);
    fds.push(...pipe.fds);
    const d = startDaemon(dir, pipe.stdout);
    child = d.child;
    const code = await within(d.exited, 15_000);
    assert.notEqual(code, 'hung', `still running 15 s after its start; stderr: ${d.stderr()}`);
    assert.equal(code, 1);
    assert.match(d.stderr(), /cannot listen on 127\.0\.0\.1:\d+ for the API: .*EADDRINUSE.*\[CROFT_ERR_BIND\]/);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const fd of fds) fs.closeSync(fd);
    await new Promise((r) => taken.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
