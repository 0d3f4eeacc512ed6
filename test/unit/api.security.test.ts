// Issue 8, findings 8 and 9 and the API's low ones: the real fastify app over real sockets (TCP on
// loopback, the local unix socket), attacked as a local user, a foreign web page (CSRF, DNS
// rebinding), a password guesser and a connection flood would.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { apiLimits, buildApi, listenWarnings } from '../../top/api/app.js';
import { FailedLogins } from '../../top/api/auth.js';
import { listenLocal, prepareSocketDir } from '../../top/cli/daemon.js';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { CroftError } from '../../src/errors.js';
import { forwardToSocket } from '../../top/lab/node-api.js';
import { silentLogger } from '../../src/log/logger.js';
import { closeApi, writeApiConfig } from './api-fixture.js';

const TOKEN = 'sesame-token-0123456789';
const BASIC = `Basic ${Buffer.from('admin:pass:word-42').toString('base64')}`;

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** One HTTP request on a fresh connection (no agent), over TCP or a unix socket. */
function request(to: { port?: number; socketPath?: string; localAddress?: string }, method: string, urlPath: string,
  headers: Record<string, string> = {}, body?: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', ...to, method, path: urlPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function writeConfig(dir: string, apiLines: string[]): void {
  writeApiConfig(dir, 'sectest', [`  socket: ${dir}/run/api.sock`, ...apiLines]);
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as net.AddressInfo).port;
}

const commands = ['start', 'stop', 'restart'];

describe('API over TCP with no credential configured', () => {
  let dir: string;
  let daemon: Daemon;
  let app: FastifyInstance;
  let local: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-apisec-'));
    writeConfig(dir, ['  host: 127.0.0.1']);
    daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    app = buildApi(daemon);
    port = await listen(app);
    local = buildApi(daemon, { local: true });
  });
  afterAll(() => closeApi([app, local], daemon, dir));

  test('finding 8: a command over TCP on loopback is refused (403, says how to configure a token); status, health and metrics stay readable', async () => {
    for (const command of commands) {
      const r = await request({ port }, 'POST', `/api/v1/modules/web/${command}`);
      assert.equal(r.status, 403, `${command}: ${r.body}`);
      const body = JSON.parse(r.body);
      assert.equal(body.error, 'CROFT_ERR_API_FORBIDDEN');
      assert.match(body.message, /need a credential and none is configured/);
      assert.match(body.message, /api: \{ tokens: /);
      assert.match(body.message, /local socket/);
    }
    assert.equal(daemon.runtimes.get('web')?.state(), 'STOP', 'no command reached the module');
    assert.equal((await request({ port }, 'GET', '/api/v1/status')).status, 200);
    assert.equal((await request({ port }, 'GET', '/metrics')).status, 200);
    assert.equal((await request({ port }, 'GET', '/health/web')).status, 503);
    assert.equal((await request({ port }, 'GET', '/var/modules/web/ready.txt')).status, 503);
  });

  test('finding 8: the local socket is 0600 and takes commands without a credential; another user cannot connect', async () => {
    const socketPath = path.join(dir, 'run', 'api.sock');
    await listenLocal(local, socketPath);
    const st = fs.statSync(socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, process.geteuid?.());
    const r = await request({ socketPath }, 'POST', '/api/v1/modules/web/start', { host: 'localhost' });
    assert.equal(r.status, 202, r.body);
    daemon.command('web', 'stop', 'test');
    // A local unprivileged user (nobody) cannot open the socket, although it can reach its folder.
    if (process.geteuid?.() === 0) {
      fs.chmodSync(dir, 0o755);
      fs.chmodSync(path.dirname(socketPath), 0o755);
      const other = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
        `require('net').connect(${JSON.stringify(socketPath)}).on('connect', () => { console.log('connected'); process.exit(0); })`
        + `.on('error', (e) => { console.log(e.code); process.exit(1); })`], { encoding: 'utf8' });
      assert.equal(other.stdout.trim(), 'EACCES', `nobody's connect: ${other.stdout}${other.stderr}`);
      fs.chmodSync(dir, 0o700);
    }
  });

  test('finding 8: the lab console forward (a loopback port to a node\'s socket) reads but never commands', async () => {
    const socketPath = path.join(dir, 'run', 'api.sock');
    assert.ok(fs.statSync(socketPath).isSocket(), 'the local app listens (previous test)');
    const forward = await forwardToSocket(socketPath, 0);
    try {
      const fport = (forward.address() as net.AddressInfo).port;
      const st = await request({ port: fport }, 'GET', '/api/v1/status');
      assert.equal(st.status, 200);
      assert.equal(JSON.parse(st.body).node, 'n1');
      assert.match(String(st.headers['content-security-policy']), /default-src 'self'/);
      for (const command of commands) {
        const r = await request({ port: fport }, 'POST', `/api/v1/modules/web/${command}`);
        assert.equal(r.status, 405, r.body);
        assert.match(JSON.parse(r.body).message, /read-only: run commands with `croft lab exec/);
      }
      assert.equal(daemon.runtimes.get('web')?.state(), 'STOP');
      // A rebinding page behind the forward is refused by the Host check of the local app.
      assert.equal((await request({ port: fport }, 'GET', '/api/v1/status', { host: 'evil.example' })).status, 421);
    } finally {
      await new Promise((r) => forward.close(r));
    }
  });

  test('finding 8: the daemon refuses a socket folder that others can write or that is not its own', () => {
    const shared = path.join(dir, 'shared');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o1777);
    assert.throws(() => prepareSocketDir(path.join(shared, 'api.sock')),
      (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_API_SOCKET' && /writable by others .*chmod go-w/.test(e.message));
    if (process.geteuid?.() === 0) {
      const foreign = path.join(dir, 'foreign');
      fs.mkdirSync(foreign, { mode: 0o755 });
      fs.chownSync(foreign, 65534, 65534);
      assert.throws(() => prepareSocketDir(path.join(foreign, 'api.sock')),
        (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_API_SOCKET' && /belongs to uid 65534/.test(e.message));
    }
    // A missing folder is created, not writable by others.
    const fresh = path.join(dir, 'fresh', 'croft');
    prepareSocketDir(path.join(fresh, 'api.sock'));
    assert.equal(fs.statSync(fresh).mode & 0o022, 0);
  });

  test('low: a warning when the API listens beyond loopback without TLS or without credentials', () => {
    const api = daemon.config.cluster.api;
    assert.deepEqual(listenWarnings(api), []);
    const open = listenWarnings({ ...api, host: '0.0.0.0' });
    assert.equal(open.length, 2);
    assert.match(open[0] ?? '', /beyond loopback without TLS: .*set api\.tls/);
    assert.match(open[1] ?? '', /no token or user configured: it is read-only over TCP/);
    assert.deepEqual(listenWarnings({ ...api, host: '10.0.0.1', tokens: [TOKEN], tls: { cert: 'c', key: 'k' } }), []);
  });
});

describe('API over TCP with credentials', () => {
  let dir: string;
  let daemon: Daemon;
  let app: FastifyInstance;
  let port: number;
  const state = () => daemon.runtimes.get('web')?.state();
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-apisec-'));
    writeConfig(dir, [
      '  host: 127.0.0.1',
      `  tokens: [${TOKEN}]`,
      '  users: [{ name: admin, password: "pass:word-42" }]',
      '  allowed_hosts: [croft.example.net]',
    ]);
    daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    app = buildApi(daemon, { failedLogins: new FailedLogins(10, 60_000, 4) });
    port = await listen(app);
  });
  afterAll(() => closeApi([app], daemon, dir));

  test('finding 8: a command over TCP without a credential is refused (401), with one it is accepted', async () => {
    const r = await request({ port }, 'POST', '/api/v1/modules/web/start');
    assert.equal(r.status, 401);
    assert.equal(state(), 'STOP');
    const ok = await request({ port }, 'POST', '/api/v1/modules/web/start', { authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 202, ok.body);
    daemon.command('web', 'stop', 'test');
  });

  test('finding 9: a foreign Host (DNS rebinding) is refused with 421, with or without credentials; configured names are served', async () => {
    for (const host of ['evil.example', `evil.example:${port}`, '127.0.0.1.evil.example', `[::2]:${port}`]) {
      const get = await request({ port }, 'GET', '/api/v1/status', { host, authorization: `Bearer ${TOKEN}` });
      assert.equal(get.status, 421, `Host ${host}: ${get.body}`);
      const post = await request({ port }, 'POST', '/api/v1/modules/web/start', { host, authorization: BASIC });
      assert.equal(post.status, 421, `POST with Host ${host}`);
      const page = await request({ port }, 'GET', '/', { host, authorization: BASIC });
      assert.equal(page.status, 421);
    }
    // No Host at all (HTTP/1.0 allows it): refused too.
    const raw = net.connect(port, '127.0.0.1');
    raw.end(`POST /api/v1/modules/web/start HTTP/1.0\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    const rawAnswer = await new Promise<string>((resolve) => {
      let text = '';
      raw.on('data', (c: Buffer) => { text += c.toString(); });
      raw.on('close', () => resolve(text));
    });
    assert.match(rawAnswer, /^HTTP\/1\.[01] 421 /);
    assert.equal(state(), 'STOP', 'no command from a foreign Host reached the module');
    const refused = await request({ port }, 'GET', '/api/v1/status', { host: 'evil.example', authorization: `Bearer ${TOKEN}` });
    assert.match(JSON.parse(refused.body).message, /not a name this API serves .*api\.allowed_hosts/);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'croft.example.net', 'CROFT.example.net.:9450', `[::1]:${port}`]) {
      assert.equal((await request({ port }, 'GET', '/api/v1/status', { host, authorization: `Bearer ${TOKEN}` })).status, 200, `Host ${host}`);
    }
    // Load balancers probe health by whatever name they know the node by.
    assert.equal((await request({ port }, 'GET', '/health/web', { host: 'lb-target.internal' })).status, 503);
    assert.equal((await request({ port }, 'GET', '/var/modules/web/ready.txt', { host: 'lb-target.internal' })).status, 503);
  });

  test('finding 9: a POST from a foreign Origin or Referer is refused (403) even with the Basic credentials a browser sends', async () => {
    const host = `127.0.0.1:${port}`;
    const foreign: Record<string, string>[] = [
      { origin: 'http://evil.example' },
      { origin: 'null' },
      { origin: `https://${host}` }, // another scheme is another origin
      { origin: `http://127.0.0.1:${port + 1}` },
      { referer: 'http://evil.example/page.html' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ];
    for (const h of foreign) {
      for (const command of [...commands, 'mirror/verify']) {
        const r = await request({ port }, 'POST', `/api/v1/modules/web/${command}`, { host, authorization: BASIC, ...h });
        assert.equal(r.status, 403, `${JSON.stringify(h)} ${command}: ${r.body}`);
        assert.equal(JSON.parse(r.body).error, 'CROFT_ERR_API_ORIGIN');
      }
    }
    assert.equal(state(), 'STOP', 'no cross-origin command reached the module');
    // The console's own origin is accepted.
    const same = await request({ port }, 'POST', '/api/v1/modules/web/start',
      { host, authorization: BASIC, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' });
    assert.equal(same.status, 202, same.body);
    daemon.command('web', 'stop', 'test');
  });

  test('finding 9: GET never changes state (no command route answers a GET or HEAD)', async () => {
    for (const command of [...commands, 'prim', 'second', 'swap', 'mirror/verify']) {
      for (const method of ['GET', 'HEAD']) {
        const r = await request({ port }, method, `/api/v1/modules/web/${command}`, { authorization: `Bearer ${TOKEN}` });
        assert.equal(r.status, 404, `${method} ${command}`);
      }
    }
    assert.equal(state(), 'STOP');
  });

  test('finding 9: every response carries CSP (no inline script or style), X-Frame-Options DENY, nosniff and no-referrer; the console has no inline script', async () => {
    const answers = [
      await request({ port }, 'GET', '/', { authorization: BASIC }),
      await request({ port }, 'GET', '/'), // 401
      await request({ port }, 'GET', '/console.js'),
      await request({ port }, 'GET', '/console.css'),
      await request({ port }, 'GET', '/api/v1/status', { authorization: `Bearer ${TOKEN}` }),
      await request({ port }, 'GET', '/no/such/page'),
      await request({ port }, 'GET', '/health/web'),
      await request({ port }, 'GET', '/metrics'),
      await request({ port }, 'GET', '/', { host: 'evil.example' }), // 421
    ];
    for (const a of answers) {
      const csp = String(a.headers['content-security-policy']);
      assert.match(csp, /default-src 'self'/, `${a.status}`);
      assert.match(csp, /script-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(a.headers['x-frame-options'], 'DENY');
      assert.equal(a.headers['x-content-type-options'], 'nosniff');
      assert.equal(a.headers['referrer-policy'], 'no-referrer');
    }
    const page = answers[0]!;
    assert.equal(page.status, 200);
    assert.match(page.body, /<script src="\/console\.js"><\/script>/);
    assert.doesNotMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline <script>');
    assert.doesNotMatch(page.body, /<style|\son[a-z]+=/i, 'no inline style or event handler');
    assert.match(String(answers[2]!.headers['content-type']), /^text\/javascript/);
    assert.match(answers[2]!.body, /new EventSource\('\/api\/v1\/console\/stream'\)/);
  });

  test('low: failed logins are limited per source: the 11th within a minute answers 429 with Retry-After, a right token too; other sources are not', async () => {
    const from = { port, localAddress: '127.0.0.9' };
    for (let i = 1; i <= 10; i++) {
      const r = await request(from, 'GET', '/api/v1/status', { authorization: `Bearer wrong-guess-${i}` });
      assert.equal(r.status, 401, `guess ${i}`);
    }
    const eleventh = await request(from, 'GET', '/api/v1/status', { authorization: 'Bearer wrong-guess-11' });
    assert.equal(eleventh.status, 429);
    const retry = Number(eleventh.headers['retry-after']);
    assert.ok(retry > 0 && retry <= 60, `Retry-After ${retry}`);
    assert.match(JSON.parse(eleventh.body).message, /too many failed logins from 127\.0\.0\.9/);
    // Blocked means blocked: the right token from that source teaches nothing now.
    assert.equal((await request(from, 'GET', '/api/v1/status', { authorization: `Bearer ${TOKEN}` })).status, 429);
    assert.equal((await request(from, 'POST', '/api/v1/modules/web/start', { authorization: BASIC })).status, 429);
    assert.equal(state(), 'STOP');
    // Another source is served, and requests without credentials are not counted as guesses.
    for (let i = 0; i < 12; i++) assert.equal((await request({ port, localAddress: '127.0.0.10' }, 'GET', '/api/v1/status')).status, 401);
    assert.equal((await request({ port, localAddress: '127.0.0.10' }, 'GET', '/api/v1/status', { authorization: `Bearer ${TOKEN}` })).status, 200);
    // Health probes are never limited.
    assert.equal((await request(from, 'GET', '/health/web')).status, 503);
  });

  test('low: the failed-login table is bounded and forgets a source after its window', () => {
    let now = 0;
    const f = new FailedLogins(3, 1000, 100, () => now);
    for (let i = 0; i < 10_000; i++) f.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    assert.equal(f.size(), 100, 'never more sources than the cap');
    for (let i = 0; i < 3; i++) f.fail('192.0.2.1');
    assert.ok(f.blockedForMs('192.0.2.1') > 0);
    // An IPv6 host owns its /64: changing the low bits does not escape.
    for (let i = 0; i < 3; i++) f.fail(`2001:db8:1:2::${i + 1}`);
    assert.ok(f.blockedForMs('2001:db8:1:2:ffff::9') > 0);
    assert.equal(f.blockedForMs('2001:db8:1:3::1'), 0);
    now = 1001;
    assert.equal(f.blockedForMs('192.0.2.1'), 0, 'the window ended');
  });
});

describe('API bounds', () => {
  let dir: string;
  let daemon: Daemon;
  let app: FastifyInstance;
  let port: number;
  const cap = 8;
  const perSource = 3;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-apisec-'));
    writeConfig(dir, ['  host: 127.0.0.1', `  tokens: [${TOKEN}]`]);
    daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    app = buildApi(daemon, { limits: { maxConnections: cap, maxConnectionsPerSource: perSource, headersTimeoutMs: 1000, requestTimeoutMs: 1500 } });
    port = await listen(app);
  });
  afterAll(() => closeApi([app], daemon, dir));

  /** Resolves with the ms until the server closes `s` (or rejects after `withinMs`). */
  const closedWithin = (s: net.Socket, withinMs: number) => new Promise<number>((resolve, reject) => {
    const t0 = Date.now();
    const timer = setTimeout(() => reject(new Error(`still open after ${withinMs} ms`)), withinMs);
    s.on('close', () => { clearTimeout(timer); resolve(Date.now() - t0); });
    s.on('error', () => { /* reset: close follows */ });
    s.resume();
  });

  /** An idle connection from `localAddress` (as a flood would hold). */
  const hold = async (localAddress: string) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    await new Promise((r) => s.once('connect', r));
    s.on('error', () => { /* closed by the server */ });
    return s;
  };

  test('low: connections are capped, per source and in all: past a cap a new connection is closed at once; served again once others leave', async () => {
    assert.ok(apiLimits.maxConnections > 0 && apiLimits.maxConnections <= 1024);
    assert.ok(apiLimits.maxConnectionsPerSource < apiLimits.maxConnections);
    const held: net.Socket[] = [];
    try {
      // One source: its 4th connection is closed, another source is still served.
      for (let i = 0; i < perSource; i++) held.push(await hold('127.0.0.21'));
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(await closedWithin(await hold('127.0.0.21'), 2000) < 2000);
      assert.equal((await request({ port, localAddress: '127.0.0.22' }, 'GET', '/health/web')).status, 503);
      // All sources: past `cap` open connections, the next one is closed whatever its source.
      for (let i = perSource; i < cap; i++) held.push(await hold(`127.0.0.${30 + i}`));
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(await closedWithin(await hold('127.0.0.50'), 2000) < 2000);
    } finally {
      for (const s of held) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await request({ port }, 'GET', '/health/web')).status, 503, 'served again');
  });

  test('low: a request whose headers never end (slowloris) is closed after headersTimeout; a body over the limit answers 413', async () => {
    const s = net.connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write('GET /health/web HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const timer = setInterval(() => s.write('a'), 200);
    try {
      const ms = await closedWithin(s, 6000);
      assert.ok(ms < 6000, `closed after ${ms} ms`);
    } finally {
      clearInterval(timer);
      s.destroy();
    }
    const big = await request({ port }, 'POST', '/api/v1/modules/web/start',
      { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, Buffer.alloc(apiLimits.bodyLimit * 2, 0x20));
    assert.equal(big.status, 413);
    assert.equal(daemon.runtimes.get('web')?.state(), 'STOP');
  });
});
