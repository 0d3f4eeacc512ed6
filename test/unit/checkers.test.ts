// Checker probes against real local things, and the runner's scheduling.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { tcpProbe } from '../../src/module/checkers/tcp.js';
import { httpProbe } from '../../src/module/checkers/http.js';
import { pingProbe } from '../../src/module/checkers/ping.js';
import { interfaceProbe } from '../../src/module/checkers/interface.js';
import { scriptProbe } from '../../src/module/checkers/script.js';
import { evaluateModuleChecker, moduleProbe } from '../../src/module/checkers/module.js';
import { CheckerRunner, type Probe, type ProbeResult } from '../../src/module/checkers/index.js';
import { freePort } from '../helpers/net.js';
import { compiledUrl } from '../helpers/paths.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-checkers-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const signal = () => AbortSignal.timeout(2000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

test('tcp: ok on a listening port, fails on a closed one', async () => {
  const server = net.createServer((s) => s.destroy());
  const port = await listen(server);
  try {
    const ok = await tcpProbe({ host: '127.0.0.1', port })(signal());
    assert.deepEqual(ok.ok, true, ok.detail);
  } finally {
    await new Promise((r) => server.close(r));
  }
  const bad = await tcpProbe({ host: '127.0.0.1', port: await freePort() })(signal());
  assert.equal(bad.ok, false);
  assert.match(bad.detail, /ECONNREFUSED/);
});

test('tcp: abort ends a connection that never completes', async () => {
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): nothing answers; the probe must end on abort.
  const t0 = Date.now();
  const r = await tcpProbe({ host: '192.0.2.1', port: 9 })(AbortSignal.timeout(150));
  assert.equal(r.ok, false);
  assert.ok(Date.now() - t0 < 1500);
});

test('http: expected status ok, other status fails, refused fails, slow answer times out', async () => {
  const server = http.createServer((req, res) => {
    if (req.url === '/slow') return void setTimeout(() => res.end('late'), 1000);
    res.statusCode = req.url === '/ok' ? 200 : 503;
    res.end('x');
  });
  const port = await listen(server);
  try {
    const ok = await httpProbe({ url: `http://127.0.0.1:${port}/ok`, expectStatus: [200] })(signal());
    assert.deepEqual(ok, { ok: true, detail: 'HTTP 200' });
    const bad = await httpProbe({ url: `http://127.0.0.1:${port}/down`, expectStatus: [200] })(signal());
    assert.deepEqual(bad, { ok: false, detail: 'HTTP 503' });
    const any2xx = await httpProbe({ url: `http://127.0.0.1:${port}/ok`, expectStatus: [] })(signal());
    assert.equal(any2xx.ok, true);
    const listed = await httpProbe({ url: `http://127.0.0.1:${port}/down`, expectStatus: [503] })(signal());
    assert.equal(listed.ok, true);
    const slow = await httpProbe({ url: `http://127.0.0.1:${port}/slow`, expectStatus: [200] })(AbortSignal.timeout(100));
    assert.equal(slow.ok, false);
    assert.match(slow.detail, /timeout/);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  const refused = await httpProbe({ url: `http://127.0.0.1:${await freePort()}/`, expectStatus: [200] })(signal());
  assert.equal(refused.ok, false);
  assert.match(refused.detail, /ECONNREFUSED/);
});

test('http: the probe\'s request, IPv6 literals, and what is not an HTTP answer', async () => {
  // A raw server: each connection gets what its request's path asks for.
  const requests: string[] = [];
  const server = net.createServer((c) => {
    let req = '';
    c.on('data', (d: Buffer) => {
      req += d.toString('latin1');
      if (!req.includes('\r\n\r\n')) return;
      requests.push(req);
      const path = req.split(' ')[1] ?? '';
      if (path.startsWith('/ok')) c.end('HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n');
      else if (path === '/bare') c.end('HTTP/1.0 200\n\n');
      else if (path === '/garbage') c.end('SSH-2.0-OpenSSH_9.2\r\n');
      else if (path === '/close') c.destroy();
      else if (path === '/endless') c.write('HTTP/1.1 200 ' + 'x'.repeat(8192));
    });
    c.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '::', r));
  const port = (server.address() as net.AddressInfo).port;
  const probe = (url: string) => httpProbe({ url, expectStatus: [] })(signal());
  try {
    assert.deepEqual(await probe(`http://127.0.0.1:${port}/ok?a=1&b=%20`), { ok: true, detail: 'HTTP 204' });
    assert.equal(requests[0], `GET /ok?a=1&b=%20 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: croft-checker\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
    // A space or CR/LF in the URL cannot reach the request line: URL encodes the one, drops the others.
    assert.equal((await probe(`http://127.0.0.1:${port}/ok x\r\nX-Evil: 1`)).ok, true);
    assert.match(requests[1]!, /^GET \/ok%20xX-Evil:%201 HTTP\/1\.1\r\nHost: /);
    assert.deepEqual(await probe(`http://[::1]:${port}/ok`), { ok: true, detail: 'HTTP 204' });
    assert.match(requests[2]!, new RegExp(`\r\nHost: \\[::1\\]:${port}\r\n`));
    assert.deepEqual(await probe(`http://127.0.0.1:${port}/bare`), { ok: true, detail: 'HTTP 200' });
    const garbage = await probe(`http://127.0.0.1:${port}/garbage`);
    assert.equal(garbage.ok, false);
    assert.match(garbage.detail, /not an HTTP answer: "SSH-2\.0/);
    const closed = await probe(`http://127.0.0.1:${port}/close`);
    assert.equal(closed.ok, false);
    assert.match(closed.detail, /closed before the status line|ECONNRESET/);
    const endless = await probe(`http://127.0.0.1:${port}/endless`);
    assert.equal(endless.ok, false);
    assert.match(endless.detail, /no HTTP status line in the first 4096 bytes/);
  } finally {
    await new Promise((r) => server.close(r));
  }
  const ftp = await probe('ftp://127.0.0.1/');
  assert.equal(ftp.ok, false);
  assert.match(ftp.detail, /protocol "ftp:" not supported/);
});

test('https: the server\'s certificate is verified: refused when untrusted, the status read when trusted', async () => {
  const key = path.join(dir, 'k.pem');
  const cert = path.join(dir, 'c.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (_req, res) => { res.statusCode = 202; res.end('x'); });
  const port = await listen(server);
  try {
    const r = await httpProbe({ url: `https://localhost:${port}/`, expectStatus: [] })(signal());
    assert.equal(r.ok, false);
    assert.match(r.detail, /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    // Trusted (a child node with the certificate in NODE_EXTRA_CA_CERTS, read at its start): the
    // TLS handshake, the GET and the status line.
    const script = `const { httpProbe } = await import(${JSON.stringify(compiledUrl('src/module/checkers/http.js'))});
console.log(JSON.stringify(await httpProbe({ url: process.argv[1], expectStatus: [] })(AbortSignal.timeout(3000))));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, `https://localhost:${port}/`],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: cert } });
    assert.deepEqual(JSON.parse(stdout), { ok: true, detail: 'HTTP 202' });
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('ping: 127.0.0.1 answers; an invalid host fails', async () => {
  const ok = await pingProbe({ host: '127.0.0.1', timeoutMs: 1000 })(signal());
  assert.equal(ok.ok, true, ok.detail);
  const bad = await pingProbe({ host: 'no-such-host.invalid', timeoutMs: 1000 })(signal());
  assert.equal(bad.ok, false);
});

test('interface: lo is up (operstate unknown on loopback), a missing interface fails', async () => {
  const lo = await interfaceProbe({ interface: 'lo' })(signal());
  assert.equal(lo.ok, true, lo.detail);
  const none = await interfaceProbe({ interface: 'croftnope0' })(signal());
  assert.equal(none.ok, false);
  assert.match(none.detail, /ENOENT/);
});

test('interface: operstate down, and unknown without carrier, fail (fake sysfs)', async () => {
  const fake = path.join(dir, 'sys');
  const mk = (name: string, files: Record<string, string>) => {
    fs.mkdirSync(path.join(fake, name), { recursive: true });
    for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(fake, name, f), `${v}\n`);
  };
  mk('eth9', { operstate: 'down', flags: '0x1003' });
  mk('tun9', { operstate: 'unknown', flags: '0x1091', carrier: '0' });
  mk('tun8', { operstate: 'unknown', flags: '0x1091', carrier: '1' });
  mk('lo9', { operstate: 'unknown', flags: '0x8' }); // loopback but administratively down
  const probe = (i: string) => interfaceProbe({ interface: i, sysClassNet: fake })(signal());
  assert.equal((await probe('eth9')).ok, false);
  assert.equal((await probe('tun9')).ok, false);
  assert.equal((await probe('tun8')).ok, true);
  assert.equal((await probe('lo9')).ok, false);
});

test('script checker: exit 0 ok, exit 1 fails, a hung script fails on abort', async () => {
  const mk = (name: string, body: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return p;
  };
  const env = { CROFT_MODULE: 'web' };
  assert.deepEqual(await scriptProbe({ path: mk('c0.sh', '[ "$CROFT_MODULE" = web ]'), timeoutMs: 2000, env })(signal()), { ok: true, detail: 'exit 0' });
  assert.deepEqual(await scriptProbe({ path: mk('c1.sh', 'exit 1'), timeoutMs: 2000, env })(signal()), { ok: false, detail: 'exit 1' });
  const t0 = Date.now();
  const hung = await scriptProbe({ path: mk('c2.sh', 'sleep 30'), timeoutMs: 5000, env })(AbortSignal.timeout(150));
  assert.deepEqual(hung, { ok: false, detail: 'timeout' });
  assert.ok(Date.now() - t0 < 2000);
});

test('module checker: ok when the state is listed, for local, a node name, or any', async () => {
  const states: Record<string, Record<string, string>> = { db: { local: 'WAIT', n2: 'UP' } };
  const get = (m: string, n: string) => (n === 'any' ? Object.values(states[m] ?? {}) : states[m]?.[n]);
  assert.equal(evaluateModuleChecker({ module: 'db', node: 'local', states: ['UP'] }, get).ok, false);
  assert.equal(evaluateModuleChecker({ module: 'db', node: 'n2', states: ['UP'] }, get).ok, true);
  assert.equal(evaluateModuleChecker({ module: 'db', node: 'any', states: ['UP'] }, get).ok, true);
  assert.equal(evaluateModuleChecker({ module: 'db', node: 'n3', states: ['UP'] }, get).ok, false);
  assert.match(evaluateModuleChecker({ module: 'x', node: 'local', states: ['UP'] }, get).detail, /unknown/);
  states.db!.local = 'UP';
  assert.equal((await moduleProbe({ module: 'db', node: 'local', states: ['UP'] }, get)(signal())).ok, true);
});

test('runner: probes every interval, never overlapping itself, a stuck probe times out', async () => {
  let inflight = 0;
  let maxInflight = 0;
  let calls = 0;
  const slow: Probe = async (sig) => {
    calls++;
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    // Ends only a while after its abort: the next probe must still wait for it.
    await new Promise<void>((r) => sig.addEventListener('abort', () => setTimeout(r, 60), { once: true }));
    inflight--;
    return { ok: true, detail: 'never seen' };
  };
  const results: { name: string; r: ProbeResult }[] = [];
  const runner = new CheckerRunner(
    [
      { name: 'slow', intervalMs: 30, timeoutMs: 40, probe: slow },
      { name: 'fast', intervalMs: 50, timeoutMs: 40, probe: async () => ({ ok: true, detail: 'fine' }) },
    ],
    (name, r) => results.push({ name, r }),
  );
  runner.setActive(['slow', 'fast']);
  await sleep(500);
  await runner.close();
  const slowResults = results.filter((x) => x.name === 'slow');
  const fastResults = results.filter((x) => x.name === 'fast');
  assert.equal(maxInflight, 1, 'a checker overlapped itself');
  assert.ok(slowResults.length >= 3 && slowResults.every((x) => !x.r.ok && /timeout/.test(x.r.detail)), JSON.stringify(slowResults));
  assert.ok(calls <= slowResults.length + 1);
  // 500 ms / 50 ms: about 10 probes, first at once.
  assert.ok(fastResults.length >= 7 && fastResults.length <= 12, `fast probes: ${fastResults.length}`);
});

test('runner: a deactivated checker stops, and its in-flight result is dropped', async () => {
  const results: string[] = [];
  let release: () => void = () => {};
  const runner = new CheckerRunner(
    [
      { name: 'a', intervalMs: 20, timeoutMs: 1000, probe: () => new Promise((r) => (release = () => r({ ok: true, detail: 'late' }))) },
      { name: 'b', intervalMs: 20, timeoutMs: 1000, probe: async () => ({ ok: true, detail: 'b' }) },
    ],
    (name) => results.push(name),
  );
  runner.setActive(['a', 'b']);
  await sleep(30);
  runner.setActive(['b']);
  release();
  await sleep(10);
  const nB = results.filter((n) => n === 'b').length;
  runner.setActive([]);
  await sleep(60);
  await runner.close();
  assert.deepEqual(results.filter((n) => n === 'a'), [], 'result of a deactivated checker reported');
  assert.ok(nB >= 1);
  assert.equal(results.filter((n) => n === 'b').length, nB, 'b probed after deactivation');
});
