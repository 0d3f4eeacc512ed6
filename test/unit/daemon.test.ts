// The daemon runs a mirror module with a MirrorRuntime, refuses nodes it does not know, and exits
// on SIGTERM whatever its stdout does.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
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

test('finding 10: a daemon whose stdout is a full pipe nobody reads still exits on SIGTERM within a bound', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-daemon-'));
  let child: ChildProcess | null = null;
  const fds: number[] = [];
  try {
    const apiPort = await freePort();
    const hbPort = await freePort();
    const socketPath = path.join(dir, 'run', 'api.sock');
    fs.mkdirSync(path.join(dir, 'modules'));
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), [
      'name: d',
      `key: "${'k'.repeat(40)}"`,
      `heartbeat: { port: ${hbPort} }`,
      'nodes:',
      '  n1: { addresses: [127.0.0.1] }',
      '  n2: { addresses: [127.0.0.2] }',
      `api: { host: 127.0.0.1, port: ${apiPort}, socket: ${socketPath} }`,
      `state_dir: ${path.join(dir, 'state')}`, // the daemon saves its membership state there, not in /var/lib/croft
    ].join('\n'), { mode: 0o600 });
    // A FIFO filled to the brim, then handed to the daemon as a blocking stdout: every write it
    // makes would block (the reader is stuck), as a pipe to a hung log collector does.
    const fifo = path.join(dir, 'stdout.fifo');
    execFileSync('mkfifo', [fifo]);
    const filler = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    fds.push(filler);
    const chunk = Buffer.alloc(4096, 0x2e);
    let filled = 0;
    for (;;) {
      try { filled += fs.writeSync(filler, chunk); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break; throw e; }
    }
    const stdout = fs.openSync(fifo, 'r+');
    fds.push(stdout);
    child = spawn(process.execPath, [croftBin, 'daemon', '--config', dir, '--node', 'n1'],
      { stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, CROFT_LOG_LEVEL: 'debug' } });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
    const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
    // Up when its local API answers.
    const t0 = Date.now();
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const req = http.get({ socketPath, path: '/health/none', headers: { host: 'localhost' } }, (res) => { res.resume(); resolve(true); });
        req.on('error', () => resolve(false));
      });
      if (ok) break;
      assert.ok(Date.now() - t0 < 15_000, `the daemon did not come up: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const tTerm = Date.now();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
    const ms = Date.now() - tTerm;
    console.log(`# stdout pipe full (${filled} bytes, never read): exit ${code} ${ms} ms after SIGTERM`);
    assert.notEqual(code, 'hung', `still running 10 s after SIGTERM; stderr: ${stderr}`);
    assert.equal(code, 0, stderr);
    assert.ok(ms < 5_000, `${ms} ms`);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const fd of fds) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
