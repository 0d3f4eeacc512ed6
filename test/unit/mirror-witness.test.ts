// The split-brain witnesses against real components: a private redis-server (127.0.0.1, random
// port, no persistence) and ping inside a network namespace this test creates.
import { afterAll, beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { PingWitness, RedisWitness } from '../../mirror/witness.js';
import type { WitnessVerdict } from '../../mirror/types.js';
import { freePort } from '../helpers/net.js';
import { compiledUrl } from '../helpers/paths.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port }, () => c.write('*1\r\n$4\r\nPING\r\n'));
    c.once('data', (d) => {
      c.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    c.once('error', () => resolve(false));
  });
}

/** A TCP relay in front of redis that the test can cut, as a network failure would. */
class Relay {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: number) {}
  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: this.target });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  /** Drops every connection and stops accepting: the witness sees a network error. */
  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = null;
  }
}

describe('RedisWitness against a real redis-server', () => {
  let redis: ChildProcess | null = null;
  let port = 0;
  const witnesses: RedisWitness[] = [];
  const make = (node: string, key: string, ttlMs: number, p = port) => {
    const w = new RedisWitness({ host: '127.0.0.1', port: p, key, ttlMs, node, marginMs: Math.floor(ttlMs / 5) });
    witnesses.push(w);
    return w;
  };
  const key = () => `croft:test:${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    try {
      execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('redis-server is missing: scripts/setup.sh installs it (Debian package redis-server)');
    }
    port = await freePort();
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await redisAnswers(port)); i++) await sleep(50);
    assert.ok(await redisAnswers(port), 'redis-server did not start');
  });

  afterAll(async () => {
    for (const w of witnesses) await w.close().catch(() => {});
    if (redis?.pid !== undefined && redis.exitCode === null) {
      const exited = new Promise((r) => redis!.once('exit', r));
      redis.kill('SIGKILL');
      await exited;
    }
  });

  test('two nodes renewing concurrently on one key: exactly one allowed at any time', async () => {
    const k = key();
    const ttlMs = 600;
    const nodes = [make('n1', k, ttlMs), make('n2', k, ttlMs)];
    const grants: { node: number; fromMs: number; untilMs: number }[] = [];
    const verdicts: WitnessVerdict[][] = [[], []];
    const endMs = Date.now() + 3000;
    await Promise.all(
      nodes.map(async (w, i) => {
        // Jittered polling, faster than ttl - margin so the holder keeps its lease.
        while (Date.now() < endMs) {
          const t = Date.now();
          const v = await w.check();
          verdicts[i]!.push(v);
          if (v.allowed) grants.push({ node: i, fromMs: t, untilMs: v.validUntilMs });
          await sleep(20 + Math.floor(Math.random() * 60));
        }
      }),
    );
    const holders = new Set(grants.map((g) => g.node));
    assert.equal(holders.size, 1, `one holder over the whole run, got ${[...holders].join(',')}`);
    const holder = [...holders][0]!;
    const other = 1 - holder;
    assert.ok(verdicts[holder]!.length > 20 && verdicts[other]!.length > 20, 'both polled many times');
    // Once acquired, the holder kept it at every renewal (no gap where both or none could run).
    const first = verdicts[holder]!.findIndex((v) => v.allowed);
    assert.ok(verdicts[holder]!.slice(first).every((v) => v.allowed), 'the holder renewed every time');
    assert.ok(verdicts[other]!.every((v) => !v.allowed && v.detail.includes(`held by n${holder + 1}`)), 'the other was refused, told who holds it');
    // Validity windows of different nodes never overlap (trivially true here; kept for the next test's shape).
    for (const a of grants) for (const b of grants) if (a.node !== b.node) assert.ok(a.untilMs <= b.fromMs || b.untilMs <= a.fromMs);
  });

  test('the holder stops renewing (crash): the other gets the lease after ttl, never before our verdict lapsed', async () => {
    const k = key();
    const ttlMs = 800;
    const a = make('n1', k, ttlMs);
    const b = make('n2', k, ttlMs);
    const va = await a.check();
    assert.ok(va.allowed, va.detail);
    const lastRenewSentMs = Date.now();
    const vb0 = await b.check();
    assert.equal(vb0.allowed, false);
    // a "crashes": no more check(), no close(). b polls every 25 ms.
    let gotMs = 0;
    let vb: WitnessVerdict = vb0;
    while (Date.now() < lastRenewSentMs + 3 * ttlMs) {
      vb = await b.check();
      if (vb.allowed) {
        gotMs = Date.now();
        break;
      }
      await sleep(25);
    }
    assert.ok(gotMs > 0, `b never got the lease: ${vb.detail}`);
    assert.ok(gotMs >= va.validUntilMs, `b got it at ${gotMs}, before a's verdict lapsed at ${va.validUntilMs}`);
    assert.ok(gotMs - lastRenewSentMs >= ttlMs - 50, `b got it ${gotMs - lastRenewSentMs} ms after a's last renewal (ttl ${ttlMs})`);
    assert.ok(gotMs - lastRenewSentMs <= ttlMs + 500, 'and soon after the ttl');
    // a comes back: its renewal must not take the lease back from b (the value is b's now).
    const va2 = await a.check();
    assert.equal(va2.allowed, false, 'a stale holder does not renew someone else\'s lease');
    assert.match(va2.detail, /held by n2/);
    assert.ok((await b.check()).allowed, 'b still holds it');
  });

  test('close() releases the lease at once; it never deletes someone else\'s', async () => {
    const k = key();
    const a = make('n1', k, 5000);
    const b = make('n2', k, 5000);
    assert.ok((await a.check()).allowed);
    assert.equal((await b.check()).allowed, false);
    await a.close();
    const vb = await b.check();
    assert.ok(vb.allowed, `released lease free at once: ${vb.detail}`);
    // A third witness that never held it closes without touching b's lease.
    const c = make('n3', k, 5000);
    assert.equal((await c.check()).allowed, false);
    await c.close();
    assert.ok((await b.check()).allowed, 'b keeps its lease');
    assert.equal((await a.check()).allowed, false, 'a closed witness says no');
  });

  test('generations: registered only with the lease held; a node taking over learns the generation the previous holder registered', async () => {
    const k = key();
    const ttlMs = 600;
    const a = make('n1', k, ttlMs);
    const b = make('n2', k, ttlMs);
    const va = await a.check({ generation: 5 });
    assert.ok(va.allowed, va.detail);
    assert.equal(va.peerGeneration, undefined, 'no peer registered anything yet');
    assert.match(va.detail, /generation 5/);
    // b is refused: its generation is not registered, and it is told a's.
    const vb = await b.check({ generation: 9 });
    assert.equal(vb.allowed, false);
    assert.equal(vb.peerGeneration, 5, 'the holder\'s generation, from its lease and its field');
    // a goes alone under a new generation: registered with the renewal, before the verdict.
    const va2 = await a.check({ generation: 6 });
    assert.ok(va2.allowed);
    // A lower generation never lowers the registered one.
    assert.ok((await a.check({ generation: 2 })).allowed);
    assert.equal((await b.check({ generation: 1 })).peerGeneration, 6);
    // a dies (no renewal): b takes over after the ttl and learns 6, though it never heard a.
    let vb2: WitnessVerdict = vb;
    for (let i = 0; i < 100 && !vb2.allowed; i++) {
      await sleep(25);
      vb2 = await b.check({ generation: 4 });
    }
    assert.ok(vb2.allowed, vb2.detail);
    assert.equal(vb2.peerGeneration, 6, 'the dead holder\'s registered generation survives its lease');
    // The refused 9 was never registered: a, back, sees b's 4 only (b holds the lease now).
    const va3 = await a.check({ generation: 6 });
    assert.equal(va3.allowed, false);
    assert.equal(va3.peerGeneration, 4);
  });

  test('network error: a held lease allows only a generation already registered', async () => {
    const relay = new Relay(port);
    await relay.start();
    const w = make('n1', key(), 2000, relay.port);
    assert.ok((await w.check({ generation: 3 })).allowed);
    await relay.cut();
    const same = await w.check({ generation: 3 });
    assert.ok(same.allowed, `registered generation, lease not lapsed: ${same.detail}`);
    const newer = await w.check({ generation: 4 });
    assert.equal(newer.allowed, false, 'a generation redis does not hold is never allowed');
    assert.match(newer.detail, /generation 4 not registered/);
  });

  test('network error: not allowed without a lease; with one, allowed only until it lapses on our clock', async () => {
    const closedPort = await freePort();
    const nobody = make('n1', key(), 1000, closedPort);
    const v0 = await nobody.check();
    assert.equal(v0.allowed, false);
    assert.match(v0.detail, /unreachable/);

    const relay = new Relay(port);
    await relay.start();
    const k = key();
    const ttlMs = 1000;
    const w = make('n1', k, ttlMs, relay.port);
    const v1 = await w.check();
    assert.ok(v1.allowed, v1.detail);
    await relay.cut();
    const v2 = await w.check();
    assert.match(v2.detail, /unreachable/);
    assert.ok(v2.validUntilMs <= v1.validUntilMs, 'an error never extends the lease');
    if (v2.allowed) assert.ok(Date.now() < v1.validUntilMs);
    await sleep(Math.max(0, v1.validUntilMs - Date.now()) + 20);
    const v3 = await w.check();
    assert.equal(v3.allowed, false, 'after the lease lapsed on our clock: not allowed');
    assert.equal(v3.validUntilMs, 0);
    // Meanwhile redis expired it; a node reaching redis directly may take it.
    await sleep(ttlMs / 5 + 50);
    assert.ok((await make('n2', k, ttlMs).check()).allowed);
  });

  test('a redis that accepts but never answers: a no within timeoutMs, not a hang', async () => {
    const silent = net.createServer((s) => {
      s.on('data', () => {});
      s.on('error', () => {});
    });
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const silentPort = (silent.address() as net.AddressInfo).port;
      const w = new RedisWitness({ host: '127.0.0.1', port: silentPort, key: key(), ttlMs: 2000, node: 'n1', timeoutMs: 300 });
      witnesses.push(w);
      const t0 = Date.now();
      const v = await w.check({ generation: 1 });
      const tookMs = Date.now() - t0;
      assert.equal(v.allowed, false);
      assert.match(v.detail, /unreachable/);
      assert.ok(tookMs >= 250 && tookMs < 1000, `answered after ${tookMs} ms (timeout 300)`);
      await w.close();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('close() leaves no handle: a process that checked (redis up, redis down) and closed exits by itself', async () => {
    const closedPort = await freePort();
    const witnessJs = compiledUrl('mirror/witness.js');
    const code = `
      import { RedisWitness } from ${JSON.stringify(witnessJs)};
      const up = new RedisWitness({ host: '127.0.0.1', port: ${port}, key: ${JSON.stringify(key())}, ttlMs: 5000, node: 'n1' });
      const down = new RedisWitness({ host: '127.0.0.1', port: ${closedPort}, key: 'k', ttlMs: 5000, node: 'n1' });
      const a = await up.check({ generation: 1 });
      const b = await down.check({ generation: 1 });
      await up.close();
      await down.close();
      const closedAt = Date.now();
      // 'exit' comes when the event loop has nothing left: how long after close() that was.
      process.on('exit', () => console.log(JSON.stringify([a.allowed, b.allowed, b.detail, Date.now() - closedAt])));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const t0 = Date.now();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const exitCode = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearTimeout(timer);
    assert.equal(exitCode, 0, `exited by itself (killed after 5 s otherwise): ${err}`);
    const [upAllowed, downAllowed, downDetail, lingerMs] = JSON.parse(out.trim()) as [boolean, boolean, string, number];
    assert.equal(upAllowed, true, 'held the lease on the live redis');
    assert.equal(downAllowed, false, 'refused on the closed port');
    assert.match(downDetail, /unreachable: .*ECONNREFUSED/, 'the detail says why');
    // ioredis's own timers (reconnection, its 2 s disconnect timer) would keep it alive longer.
    assert.ok(lingerMs < 500, `the process lived ${lingerMs} ms after close()`);
    assert.ok(Date.now() - t0 < 5000);
  });
});

describe('PingWitness in a private network namespace', () => {
  const ns = `croft-mw-${process.pid}-${randomBytes(2).toString('hex')}`;
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });
  const prefix = ['ip', 'netns', 'exec', ns];

  test('allowed when one of the addresses answers, with the address in the detail', async () => {
    const w = new PingWitness({ addresses: ['10.99.0.1', '127.0.0.1'], timeoutMs: 500, validityMs: 2000, commandPrefix: prefix });
    const t0 = Date.now();
    const v = await w.check();
    assert.ok(v.allowed, v.detail);
    assert.equal(v.detail, '127.0.0.1 answered');
    assert.ok(v.validUntilMs >= t0 + 2000 && v.validUntilMs <= Date.now() + 2000);
  });

  test('not allowed when none answers (no route in the namespace), and after close', async () => {
    const w = new PingWitness({ addresses: ['10.99.0.1', '10.99.0.2'], timeoutMs: 300, commandPrefix: prefix });
    const v = await w.check();
    assert.equal(v.allowed, false);
    assert.match(v.detail, /no answer from 10\.99\.0\.1, 10\.99\.0\.2/);
    const ok = new PingWitness({ addresses: ['127.0.0.1'], commandPrefix: prefix });
    await ok.close();
    assert.equal((await ok.check()).allowed, false);
  });
});
