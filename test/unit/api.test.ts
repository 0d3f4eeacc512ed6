// The HTTP API built by its factory, exercised with inject() against a real (not started) daemon.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../top/api/app.js';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { silentLogger } from '../../src/log/logger.js';
import { closeApi, writeApiConfig } from './api-fixture.js';

describe('API', () => {
  let dir: string;
  let daemon: Daemon;
  let app: FastifyInstance;
  let local: FastifyInstance;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-api-'));
    writeApiConfig(dir, 'apitest', ['  tokens: [sesame-token-0123456789]', '  users: [{ name: admin, password: "pass:word-42" }]'],
      { web: 'kind: light\nnodes: [n1]\nautostart: false\n', other: 'kind: light\nnodes: [n2]\n' });
    daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    app = buildApi(daemon);
    local = buildApi(daemon, { local: true });
  });
  afterAll(() => closeApi([app, local], daemon, dir));

  test('/api/v1 refuses requests without valid credentials', async () => {
    for (const authorization of [undefined, 'Bearer wrong', 'Basic ' + Buffer.from('admin:nope').toString('base64'), 'Digest x']) {
      const r = await app.inject({ method: 'GET', url: '/api/v1/status', headers: authorization ? { authorization } : {} });
      assert.equal(r.statusCode, 401, `authorization ${authorization}`);
      assert.equal(r.json().error, 'CROFT_ERR_API');
    }
    const post = await app.inject({ method: 'POST', url: '/api/v1/modules/web/start' });
    assert.equal(post.statusCode, 401);
    assert.equal(daemon.runtimes.get('web')?.state(), 'STOP', 'an unauthenticated command changes nothing');
  });

  test('a token or a user opens /api/v1; the local socket app needs none', async () => {
    const bearer = await app.inject({ method: 'GET', url: '/api/v1/status', headers: { authorization: 'Bearer sesame-token-0123456789' } });
    assert.equal(bearer.statusCode, 200);
    const st = bearer.json();
    assert.equal(st.cluster, 'apitest');
    assert.equal(st.node, 'n1');
    assert.deepEqual(st.nodes.map((n: { name: string; state: string }) => `${n.name}:${n.state}`), ['n1:UP', 'n2:DOWN']);
    assert.deepEqual(Object.keys(st.modules), ['other', 'web']);
    const basic = await app.inject({ method: 'GET', url: '/api/v1/status', headers: { authorization: 'Basic ' + Buffer.from('admin:pass:word-42').toString('base64') } });
    assert.equal(basic.statusCode, 200);
    assert.equal((await local.inject({ method: 'GET', url: '/api/v1/status' })).statusCode, 200);
  });

  test('/health and ready.txt answer 503 when the module does not serve here, 404 when unknown', async () => {
    const h = await app.inject({ method: 'GET', url: '/health/web' });
    assert.equal(h.statusCode, 503);
    assert.equal(h.json().state, 'STOP');
    const r = await app.inject({ method: 'GET', url: '/var/modules/web/ready.txt' });
    assert.equal(r.statusCode, 503);
    assert.equal(r.body, 'not_ready\n');
    assert.equal((await app.inject({ method: 'GET', url: '/health/nope' })).statusCode, 404);
    // A module of another node is known but never served by this node.
    assert.equal((await app.inject({ method: 'GET', url: '/health/other' })).statusCode, 503);
  });

  test('commands: unknown modules and modules of other nodes give clear errors', async () => {
    const auth = { authorization: 'Bearer sesame-token-0123456789' };
    const unknown = await app.inject({ method: 'POST', url: '/api/v1/modules/nope/start', headers: auth });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error, 'CROFT_ERR_UNKNOWN_MODULE');
    const elsewhere = await app.inject({ method: 'POST', url: '/api/v1/modules/other/start', headers: auth });
    assert.equal(elsewhere.statusCode, 404);
    assert.match(elsewhere.json().message, /does not run on node n1 \(its nodes: n2\)/);
  });

  test('/metrics is Prometheus text with heartbeat, peer, module and checker series', async () => {
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(m.statusCode, 200);
    assert.match(m.headers['content-type'] as string, /^text\/plain/);
    for (const line of [
      /^# TYPE croft_heartbeats_sent_total counter$/m,
      /^croft_heartbeats_received_total 0$/m,
      /^croft_heartbeats_dropped_total\{reason="bad_mac"\} 0$/m,
      /^croft_peer_up\{peer="n2"\} 0$/m,
      /^croft_module_state\{module="web",state="STOP"\} 1$/m,
      /^croft_module_state\{module="web",state="UP"\} 0$/m,
      /^croft_log_dropped_total\{reason="buffer_full"\} \d+$/m,
    ]) assert.match(m.body, line);
    // Every sample line is `name{labels} value`.
    for (const l of m.body.trim().split('\n')) if (!l.startsWith('#')) assert.match(l, /^[a-z_]+(\{[^}]*\})? -?\d+(\.\d+)?$/);
  });

  test('the console page is served to authenticated users', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/' })).statusCode, 401);
    const r = await app.inject({ method: 'GET', url: '/', headers: { authorization: 'Basic ' + Buffer.from('admin:pass:word-42').toString('base64') } });
    assert.equal(r.statusCode, 200);
    assert.match(r.body, /croft cluster <b>apitest<\/b>/);
  });
});
