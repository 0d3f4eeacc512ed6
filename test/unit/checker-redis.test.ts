// The redis checker (src/module/checkers/redis.ts) against a real redis-server this test starts on
// a free loopback port (killed by pid after), against servers made here that answer an error or
// never answer, and its configuration (`type: redis`, host/port defaults, password, db).
import { afterAll, beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { checkSources } from '../../src/config/index.js';
import type { FileAccess } from '../../src/config/index.js';
import { probeFor } from '../../src/module/checkers/index.js';
import { redisProbe, type RedisProbeConfig } from '../../src/module/checkers/redis.js';
import type { ProbeResult } from '../../src/module/checkers/probe.js';
import { freePort } from '../helpers/net.js';
import { compiledUrl } from '../helpers/paths.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** PONG through a raw socket (independent of the code under test). */
function answersPong(port: number, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port }, () => {
      const auth = password === undefined ? '' : `*2\r\n$4\r\nAUTH\r\n$${password.length}\r\n${password}\r\n`;
      c.write(`${auth}*1\r\n$4\r\nPING\r\n`);
    });
    let got = '';
    c.on('data', (d) => {
      got += d.toString();
      if (got.includes('PONG') || got.includes('-')) {
        c.destroy();
        resolve(got.includes('+PONG'));
      }
    });
    c.once('error', () => resolve(false));
  });
}

/** Runs a probe as the CheckerRunner does: its signal aborts at timeoutMs. */
async function probeOnce(cfg: RedisProbeConfig): Promise<ProbeResult & { tookMs: number }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), cfg.timeoutMs);
  const t0 = Date.now();
  try {
    const r = await redisProbe(cfg)(ac.signal);
    return { ...r, tookMs: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

class RedisServer {
  proc: ChildProcess | null = null;
  port = 0;
  constructor(private readonly extra: string[] = [], private readonly password?: string) {}
  async start(): Promise<void> {
    this.port = await freePort();
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...this.extra], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await answersPong(this.port, this.password)); i++) await sleep(50);
    assert.ok(await answersPong(this.port, this.password), 'redis-server did not start');
  }
  async stop(): Promise<void> {
    const p = this.proc;
    if (p?.pid !== undefined && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
  }
}

/**
 * A TCP server that answers every command with `reply` (null: reads and says nothing). Commands are
 * counted by the RESP array headers that start them (`*<n>\r\n`; our arguments hold none).
 */
async function fakeServer(reply: string | null): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.on('data', (d) => {
      const commands = d.toString('latin1').match(/(^|\n)\*\d+\r\n/g)?.length ?? 0;
      if (reply !== null) for (let i = 0; i < commands; i++) s.write(reply);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('redis checker against a real redis-server', () => {
  const plain = new RedisServer();
  const secured = new RedisServer(['--requirepass', 'croft-secret-pw'], 'croft-secret-pw');

  beforeAll(async () => {
    try {
      execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('redis-server is missing: scripts/setup.sh installs it (Debian package redis-server)');
    }
    await plain.start();
    await secured.start();
  });
  afterAll(async () => {
    await plain.stop();
    await secured.stop();
  });

  test('healthy: PING answers PONG', async () => {
    const r = await probeOnce({ host: '127.0.0.1', port: plain.port, timeoutMs: 1000 });
    assert.equal(r.ok, true, r.detail);
    assert.equal(r.detail, `PONG from 127.0.0.1:${plain.port}`);
  });

  test('password and db: healthy with the right ones; a wrong or missing password fails with the server\'s reply', async () => {
    const good = await probeOnce({ host: '127.0.0.1', port: secured.port, password: 'croft-secret-pw', db: 3, timeoutMs: 1000 });
    assert.equal(good.ok, true, good.detail);
    const wrong = await probeOnce({ host: '127.0.0.1', port: secured.port, password: 'not-the-password', timeoutMs: 1000 });
    assert.equal(wrong.ok, false);
    assert.match(wrong.detail, /WRONGPASS|invalid password/);
    const none = await probeOnce({ host: '127.0.0.1', port: secured.port, timeoutMs: 1000 });
    assert.equal(none.ok, false);
    assert.match(none.detail, /NOAUTH/);
    // A db the server does not have (16 by default) is an error reply too.
    const badDb = await probeOnce({ host: '127.0.0.1', port: plain.port, db: 99, timeoutMs: 1000 });
    assert.equal(badDb.ok, false);
    assert.match(badDb.detail, /DB index is out of range/);
  });

  test('fails once the server is stopped, saying why', async () => {
    const own = new RedisServer();
    await own.start();
    try {
      assert.equal((await probeOnce({ host: '127.0.0.1', port: own.port, timeoutMs: 1000 })).ok, true);
    } finally {
      await own.stop();
    }
    const r = await probeOnce({ host: '127.0.0.1', port: own.port, timeoutMs: 1000 });
    assert.equal(r.ok, false);
    assert.equal(r.detail, `ECONNREFUSED 127.0.0.1:${own.port}`);
    assert.ok(r.tookMs < 500, 'a refused connection fails at once');
  });
});

describe('redis checker against servers that misbehave', () => {
  test('an error reply (LOADING, MASTERDOWN) is a failure with the reply in the detail', async () => {
    for (const reply of ['-LOADING Redis is loading the dataset in memory', "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."]) {
      const fake = await fakeServer(`${reply}\r\n`);
      try {
        const r = await probeOnce({ host: '127.0.0.1', port: fake.port, timeoutMs: 1000 });
        assert.equal(r.ok, false);
        assert.equal(r.detail, `127.0.0.1:${fake.port} answered ${reply.slice(1)}`);
      } finally {
        await fake.close();
      }
    }
  });

  test('a server that accepts but never answers: fails within the timeout', async () => {
    const fake = await fakeServer(null);
    try {
      const r = await probeOnce({ host: '127.0.0.1', port: fake.port, timeoutMs: 300 });
      assert.equal(r.ok, false);
      assert.match(r.detail, /timeout/);
      assert.ok(r.tookMs >= 250 && r.tookMs < 800, `failed after ${r.tookMs} ms (timeout 300)`);
    } finally {
      await fake.close();
    }
  });

  test('a probe whose signal aborts leaves nothing running: a process that probed a silent server exits at once', async () => {
    const fake = await fakeServer(null);
    try {
      const redisJs = compiledUrl('src/module/checkers/redis.js');
      const code = `
        import { redisProbe } from ${JSON.stringify(redisJs)};
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 200);
        const r = await redisProbe({ host: '127.0.0.1', port: ${fake.port}, timeoutMs: 200 })(ac.signal);
        const doneAt = Date.now();
        process.on('exit', () => console.log(JSON.stringify([r.ok, Date.now() - doneAt])));
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const exitCode = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      clearTimeout(killer);
      assert.equal(exitCode, 0);
      const [ok, lingerMs] = JSON.parse(out.trim()) as [boolean, number];
      assert.equal(ok, false);
      // The half-closed socket is destroyed by disconnectTimeout (= timeoutMs) at the latest.
      assert.ok(lingerMs < 500, `the process lived ${lingerMs} ms after the probe ended`);
    } finally {
      await fake.close();
    }
  });
});

describe('redis checker configuration', () => {
  const cluster = ['name: t', 'key: "0123456789abcdef0123456789abcdef"', 'nodes:', '  n1:', '    addresses: [10.77.0.1]', ''].join('\n');
  const files: FileAccess = {
    stat: (p) => (p.endsWith('start_both') || p.endsWith('stop_both') ? { isFile: true, executable: true } : undefined),
    read: () => ({ error: 'ENOENT' }),
  };
  const moduleWith = (checker: string[]) =>
    ['kind: light', 'nodes: [n1]', 'scripts:', '  start_both: ./start_both', '  stop_both: ./stop_both', 'checkers:', ...checker, ''].join('\n');
  const load = (checker: string[]) =>
    checkSources('/etc/croft', { file: '/etc/croft/cluster.yaml', text: cluster }, [{ file: '/etc/croft/modules/cache.yaml', text: moduleWith(checker) }], files);

  test('type: redis with no keys probes 127.0.0.1:6379 and restarts on failure; password and db are kept', () => {
    const bare = load(['  - name: ping', '    type: redis']);
    assert.deepEqual(bare.problems, []);
    const c = bare.config!.modules[0]!.checkers[0]!;
    assert.equal(c.type, 'redis');
    assert.ok(c.type === 'redis');
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 6379);
    assert.equal(c.password, undefined);
    assert.equal(c.db, undefined);
    assert.equal(c.onFailure, 'restart');

    const full = load(['  - type: redis', '    host: 10.0.0.5', '    port: 6380', '    password: s3cret', '    db: 2', '    timeout_ms: 500']);
    assert.deepEqual(full.problems, []);
    const f = full.config!.modules[0]!.checkers[0]!;
    assert.ok(f.type === 'redis');
    assert.deepEqual({ host: f.host, port: f.port, password: f.password, db: f.db, timeoutMs: f.timeoutMs }, { host: '10.0.0.5', port: 6380, password: 's3cret', db: 2, timeoutMs: 500 });
    // probeFor knows the type.
    assert.equal(typeof probeFor(f, { getModuleState: () => undefined, env: {} }), 'function');
  });

  test('a negative db and an unknown key are reported at the checker', () => {
    const bad = load(['  - type: redis', '    db: -1', '    url: redis://x']);
    assert.equal(bad.config, undefined);
    const byKey = new Map(bad.problems.map((p) => [p.key, p]));
    assert.match(byKey.get('checkers[0].db')?.message ?? '', /database number.*got -1/, JSON.stringify(bad.problems));
    assert.equal(byKey.get('checkers[0].db')?.line, 8);
    assert.match(byKey.get('checkers[0].url')?.message ?? '', /unknown key "url".*host, port, password, db/);
  });
});
