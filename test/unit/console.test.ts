// The web console's server side, attacked through the real API (inject and a real port): login and
// its cookie (HttpOnly, SameSite=Strict), roles, CSRF (a foreign Origin, a cookie without Origin, a
// GET never commands), failed-login throttling, the login page, the live stream, the log tail.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../top/api/app.js';
import { MAX_STREAMS } from '../../top/api/console-routes.js';
import { FailedLogins } from '../../top/api/auth.js';
import { Sessions } from '../../top/api/session.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger, LogRing, silentLogger, sinkOf } from '../../src/log/logger.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { closeApi, writeApiConfig } from './api-fixture.js';

const SELF = 'http://localhost';

function cookieOf(r: { headers: Record<string, unknown> }): string {
  const set = String(r.headers['set-cookie'] ?? '');
  return set.slice(0, set.indexOf(';'));
}

describe('web console: sessions, roles, CSRF', () => {
  let dir: string;
  let daemon: Daemon;
  let app: FastifyInstance;
  const logTail = new LogRing(50);
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-console-'));
    writeApiConfig(dir, 'consoletest', [
      '  tokens: [sesame-token-0123456789]',
      '  users:',
      '    - { name: vera, password: "viewer-pass-1", role: viewer }',
      '    - { name: otto, password: "operator-pass-1", role: operator }',
    ]);
    // Maintenance is persisted under state_dir: this test's own, never the machine's /var/lib/croft.
    fs.appendFileSync(path.join(dir, 'cluster.yaml'), `\nstate_dir: ${path.join(dir, 'state')}\n`);
    daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    app = buildApi(daemon, { failedLogins: new FailedLogins(3, 60_000), logTail });
  });
  afterAll(() => closeApi([app], daemon, dir));

  const login = async (user: string, password: string, origin = SELF) =>
    app.inject({ method: 'POST', url: '/api/v1/login', headers: { origin, 'content-type': 'application/json' }, payload: { user, password } });

  test('login answers an HttpOnly SameSite=Strict cookie (not Secure over http) that opens the read routes', async () => {
    const r = await login('vera', 'viewer-pass-1');
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { who: 'vera', role: 'viewer', node: 'n1', cluster: 'consoletest' });
    const set = String(r.headers['set-cookie']);
    assert.match(set, /^croft_session=[\w-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Strict$/);
    const who = await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie: cookieOf(r) } });
    assert.equal(who.statusCode, 200);
    assert.equal(who.json().role, 'viewer');
    const snap = await app.inject({ method: 'GET', url: '/api/v1/console/snapshot', headers: { cookie: cookieOf(r) } });
    assert.equal(snap.statusCode, 200);
    assert.deepEqual(Object.keys(snap.json().status.modules), ['web']);
    const conns = await app.inject({ method: 'GET', url: '/api/v1/console/connections', headers: { cookie: cookieOf(r) } });
    assert.deepEqual(conns.json(), { node: 'n1', farms: {} });
    // The page: the console with the names once logged in; without, the login page, 401, no Basic prompt, no names.
    const page = await app.inject({ method: 'GET', url: '/', headers: { cookie: cookieOf(r) } });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /console of node <b id="self">n1<\/b>/);
    const anon = await app.inject({ method: 'GET', url: '/' });
    assert.equal(anon.statusCode, 401);
    assert.equal(anon.headers['www-authenticate'], undefined);
    assert.match(anon.body, /<form id="login"/);
    assert.doesNotMatch(anon.body, /consoletest|n1/);
  });

  test('a viewer\'s cookie is refused every command (403 CROFT_ERR_API_ROLE); nothing changes', async () => {
    const c = cookieOf(await login('vera', 'viewer-pass-1'));
    for (const url of ['/api/v1/modules/web/start', '/api/v1/modules/web/maintenance/on', '/api/v1/maintenance/on']) {
      const r = await app.inject({ method: 'POST', url, headers: { cookie: c, origin: SELF } });
      assert.equal(r.statusCode, 403, url);
      assert.equal(r.json().error, 'CROFT_ERR_API_ROLE');
    }
    assert.equal(daemon.runtimes.get('web')?.state(), 'STOP');
    assert.equal(daemon.maintenance.snapshot().node, null);
  });

  test('an operator\'s cookie commands from the console\'s origin only: a foreign Origin, a cross-site fetch, no Origin are refused', async () => {
    const c = cookieOf(await login('otto', 'operator-pass-1'));
    const url = '/api/v1/modules/web/maintenance/on';
    const foreign = await app.inject({ method: 'POST', url, headers: { cookie: c, origin: 'http://evil.example' } });
    assert.equal(foreign.statusCode, 403);
    assert.equal(foreign.json().error, 'CROFT_ERR_API_ORIGIN');
    const site = await app.inject({ method: 'POST', url, headers: { cookie: c, 'sec-fetch-site': 'cross-site' } });
    assert.equal(site.json().error, 'CROFT_ERR_API_ORIGIN');
    const none = await app.inject({ method: 'POST', url, headers: { cookie: c } });
    assert.equal(none.statusCode, 403);
    assert.equal(none.json().error, 'CROFT_ERR_API_ORIGIN');
    assert.match(none.json().message, /session cookie/);
    assert.deepEqual(daemon.maintenance.snapshot().modules, {}, 'no refused request changed anything');
    // No credential at all: 401, even from the right origin.
    const anon = await app.inject({ method: 'POST', url, headers: { origin: SELF } });
    assert.equal(anon.statusCode, 401);
    // GET never commands: the command routes are POST only.
    assert.equal((await app.inject({ method: 'GET', url, headers: { cookie: c } })).statusCode, 404);
    const ok = await app.inject({ method: 'POST', url, headers: { cookie: c, origin: SELF } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.ok(daemon.maintenance.snapshot().modules.web, 'the operator put web in maintenance');
    const off = await app.inject({ method: 'POST', url: '/api/v1/modules/web/maintenance/off', headers: { cookie: c, origin: SELF } });
    assert.equal(off.statusCode, 200);
    // Reload stays admin's.
    const reload = await app.inject({ method: 'POST', url: '/api/v1/reload', headers: { cookie: c, origin: SELF } });
    assert.equal(reload.json().error, 'CROFT_ERR_API_ROLE');
  });

  test('login from a foreign Origin is refused; logout ends the session; a forged cookie opens nothing', async () => {
    const foreign = await login('otto', 'operator-pass-1', 'http://evil.example');
    assert.equal(foreign.statusCode, 403);
    assert.equal(foreign.json().error, 'CROFT_ERR_API_ORIGIN');
    assert.equal(foreign.headers['set-cookie'], undefined);
    const c = cookieOf(await login('otto', 'operator-pass-1'));
    const out = await app.inject({ method: 'POST', url: '/api/v1/logout', headers: { cookie: c, origin: SELF } });
    assert.match(String(out.headers['set-cookie']), /^croft_session=; Max-Age=0/);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie: c } })).statusCode, 401);
    const forged = await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie: `croft_session=${'A'.repeat(43)}` } });
    assert.equal(forged.statusCode, 401);
    // An ended session's stream asks for no Basic prompt (the page shows its login form).
    assert.equal(forged.headers['www-authenticate'], undefined);
    // A token logs in too (admin).
    const t = await app.inject({ method: 'POST', url: '/api/v1/login', headers: { origin: SELF }, payload: { token: 'sesame-token-0123456789' } });
    assert.equal(t.json().role, 'admin');
    const bad = await app.inject({ method: 'POST', url: '/api/v1/login', headers: { origin: SELF }, payload: { user: 'otto' } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error, 'CROFT_ERR_USAGE');
  });

  test('bad input: a login that is not JSON, the who box with a wrong module, address or port: 4xx with the reason, no cookie', async () => {
    const text = await app.inject({ method: 'POST', url: '/api/v1/login', headers: { origin: SELF, 'content-type': 'text/plain' }, payload: 'user=otto' });
    assert.ok(text.statusCode >= 400 && text.statusCode < 500, `${text.statusCode}`);
    assert.equal(text.headers['set-cookie'], undefined);
    const big = await app.inject({ method: 'POST', url: '/api/v1/login', headers: { origin: SELF }, payload: { user: 'otto', password: 'x'.repeat(20_000) } });
    assert.equal(big.statusCode, 413);
    const c = cookieOf(await login('vera', 'viewer-pass-1'));
    const who = (q: string) => app.inject({ method: 'GET', url: `/api/v1/farm/${q}`, headers: { cookie: c } });
    const light = await who('web/who?client=10.0.0.1');
    assert.equal(light.statusCode, 400);
    assert.match(light.json().message, /web" is a light module; croft farm needs a farm module/);
    assert.equal((await who('nope/who?client=10.0.0.1')).json().error, 'CROFT_ERR_UNKNOWN_MODULE');
    const port = await who('web/who?client=10.0.0.1&port=99999');
    assert.equal(port.statusCode, 400);
    assert.match(port.json().message, /port=99999/);
  });

  test('wrong passwords at login count as failed logins: past the limit, 429 even for the right one', async () => {
    const fresh = buildApi(daemon, { failedLogins: new FailedLogins(3, 60_000) });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await fresh.inject({ method: 'POST', url: '/api/v1/login', headers: { origin: SELF }, payload: { user: 'otto', password: `guess-${i}` } });
        assert.equal(r.statusCode, 401);
      }
      const right = await fresh.inject({ method: 'POST', url: '/api/v1/login', headers: { origin: SELF }, payload: { user: 'otto', password: 'operator-pass-1' } });
      assert.equal(right.statusCode, 429);
      assert.equal(right.json().error, 'CROFT_ERR_API_RATE');
      assert.equal(right.headers['set-cookie'], undefined);
    } finally {
      await fresh.close();
    }
  });

  test('the live stream: hello, the history, the log tail and a snapshot at once; then each new event and log line', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const c = cookieOf(await login('vera', 'viewer-pass-1'));
    logTail.push('{"msg":"before"}\n');
    const got: string[] = [];
    const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/console/stream', headers: { cookie: c, host: 'localhost' } });
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => { req.on('response', resolve); req.on('error', reject); });
    try {
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      assert.match(String(res.headers['content-security-policy']), /script-src 'self'/);
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) { got.push(buf.slice(0, i)); buf = buf.slice(i + 2); }
      });
      const waitFor = async (re: RegExp) => {
        for (let t = 0; t < 100 && !got.some((g) => re.test(g)); t++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(got.some((g) => re.test(g)), `stream carried ${re}: ${got.map((g) => g.slice(0, 60)).join(' | ')}`);
      };
      await waitFor(/^event: hello\ndata: \{"who":"vera","role":"viewer"/);
      await waitFor(/^event: log\ndata: \[.*before/);
      await waitFor(/^event: snapshot\ndata: \{"status"/);
      daemon.events.publish({ module: 'web', kind: 'state', from: 'STOP', to: 'UP', cause: 'test event' });
      await waitFor(/^event: event\ndata: .*"cause":"test event"/);
      logTail.push('{"msg":"after"}');
      await waitFor(/^event: log\ndata: ".*after/);
      // The log route answers the same lines.
      const log = await app.inject({ method: 'GET', url: '/api/v1/log?lines=5', headers: { cookie: c } });
      assert.ok(log.json().lines.some((l: string) => l.includes('after')));
      // Without a credential, no stream.
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/console/stream' })).statusCode, 401);
    } finally {
      req.destroy();
    }
  });
});

describe('console stream and the server\'s timeouts', () => {
  test('a stream outlives the request and header timeouts (they bound receiving a request, not a long answer)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-console-t-'));
    writeApiConfig(dir, 'consoletest', ['  tokens: [sesame-token-0123456789]']);
    const daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    const app = buildApi(daemon, { limits: { requestTimeoutMs: 600, headersTimeoutMs: 300, keepAliveTimeoutMs: 300 } });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const port = (app.server.address() as AddressInfo).port;
      const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/console/stream', headers: { authorization: 'Bearer sesame-token-0123456789', host: 'localhost' } });
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => { req.on('response', resolve); req.on('error', reject); });
      let snapshots = 0;
      let closed = false;
      res.setEncoding('utf8');
      res.on('data', (d: string) => { snapshots += d.split('event: snapshot\n').length - 1; });
      res.on('close', () => { closed = true; });
      await new Promise((r) => setTimeout(r, 2000));
      const seen = snapshots;
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(closed, false, 'still open after 2.7 s');
      assert.ok(snapshots > seen && seen >= 3, `snapshots keep coming: ${seen} then ${snapshots}`);
      req.destroy();
    } finally {
      await closeApi([app], daemon, dir);
    }
  });
});

describe('console streams are bounded', () => {
  test(`past ${MAX_STREAMS} open streams, the next is refused (503 CROFT_ERR_API_BUSY); a closed one frees its place`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-console-b-'));
    writeApiConfig(dir, 'consoletest', ['  tokens: [sesame-token-0123456789]']);
    const daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    // Every stream from one test process: raise the per-source cap so that the stream cap is what is hit.
    const app = buildApi(daemon, { limits: { maxConnectionsPerSource: 100 } });
    const reqs: http.ClientRequest[] = [];
    const open = () => new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: (app.server.address() as AddressInfo).port, path: '/api/v1/console/stream',
        headers: { authorization: 'Bearer sesame-token-0123456789', host: 'localhost' }, agent: false });
      reqs.push(req);
      req.on('response', (res) => { res.resume(); resolve(res); });
      req.on('error', reject);
    });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      for (let i = 0; i < MAX_STREAMS; i++) assert.equal((await open()).statusCode, 200, `stream ${i + 1}`);
      const over = await open();
      assert.equal(over.statusCode, 503);
      const busy = await app.inject({ method: 'GET', url: '/api/v1/console/stream', headers: { authorization: 'Bearer sesame-token-0123456789' } });
      assert.equal(busy.json().error, 'CROFT_ERR_API_BUSY');
      reqs[0]!.destroy();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await open()).statusCode, 200, 'a place freed by a closed stream');
    } finally {
      for (const r of reqs) r.destroy();
      await closeApi([app], daemon, dir);
    }
  });
});

describe('console sessions and log ring', () => {
  test('sessions are bounded, expire, and end when their user leaves the configuration', () => {
    let now = 0;
    const api = { users: [{ name: 'a', password: 'p', role: 'operator' as const }], tokens: ['t'.repeat(20)] } as never;
    const s = new Sessions(api, 1000, 2, () => now);
    const a = s.open({ user: 'a' });
    const b = s.open({ token: 't'.repeat(20) });
    assert.deepEqual(s.resolve(a), { who: 'a', role: 'operator' });
    assert.deepEqual(s.resolve(b), { who: 'token', role: 'admin' });
    s.open({ user: 'a' });
    assert.equal(s.size(), 2);
    assert.equal(s.resolve(a), null, 'the oldest session went first');
    now = 1001;
    assert.equal(s.resolve(b), null, 'expired');
    const gone = new Sessions({ users: [], tokens: [] } as never);
    assert.equal(gone.resolve(gone.open({ user: 'a' })), null, 'a user not in the configuration has no session');
  });

  test('the log ring keeps the newest lines, cut at their bound, and the sink feeds it', () => {
    const r = new LogRing(3, 10);
    for (let i = 0; i < 5; i++) r.push(`line ${i}\n`);
    assert.deepEqual(r.lines(), ['line 2', 'line 3', 'line 4']);
    r.push('x'.repeat(50));
    assert.equal(r.lines(1)[0], `${'x'.repeat(10)}…`);
    const log = createLogger({ node: 'n1', destination: new PassThrough() });
    log.info({ module: 'web' }, 'hello ring');
    assert.match(sinkOf(log)!.recent.lines(1)[0]!, /"msg":"hello ring"/);
  });
});
