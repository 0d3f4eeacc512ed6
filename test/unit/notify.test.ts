// Notifications (top/notify/): the event bus and its history, each sink's bounded queue (drop of the
// oldest, counted), order, retry with backoff, never blocking the publisher; the real sinks against
// real receivers: a webhook HTTP server, an exec hook (timeout, perms refusal), syslog over UDP
// (RFC 5424) and on a unix datagram socket through logger(1) (RFC 3164).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, test } from 'vitest';
import { toNotifyConfig, type NotifyConfig } from '../../src/config/notify.js';
import { EventBus, type SinkSpec } from '../../top/notify/bus.js';
import { describeEvent, type NotifyEvent } from '../../top/notify/event.js';
import { SinkQueue } from '../../top/notify/queue.js';
import { eventEnv, execDeliver, formatSyslog, syslogDeliver, webhookDeliver } from '../../top/notify/sinks.js';
import { publishRuntimeEvents, transitionKind } from '../../top/daemon/events.js';
import { EventEmitter } from 'node:events';
import { sleep, waitFor as pollUntil } from '../helpers/cluster.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-notify-'));
fs.chmodSync(root, 0o755);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// The project's poll (test/helpers/cluster.ts), at this file's pace and bound.
const waitFor = (what: string, pred: () => boolean, timeoutMs = 5000): Promise<number> => pollUntil(what, pred, timeoutMs, 5);

const baseConfig: NotifyConfig = toNotifyConfig(undefined, '/etc/croft');

function event(sequence: number, module = 'db', kind: NotifyEvent['kind'] = 'state'): NotifyEvent {
  return { sequence, time: new Date(Date.UTC(2026, 11, 7, 8, 1, 2)).toISOString(), cluster: 'c', node: 'n1', incarnation: 7, module, kind, from: 'PRIM', to: 'WAIT', cause: `cause ${sequence}` };
}

/** A logger that records warn/error lines (the queue's drop and failure logs). */
function recordingLog(): { log: never; lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const log = {
    info: (obj: Record<string, unknown>, msg = '') => lines.push({ level: 'info', obj, msg }),
    warn: (obj: Record<string, unknown>, msg = '') => lines.push({ level: 'warn', obj, msg }),
    error: (obj: Record<string, unknown>, msg = '') => lines.push({ level: 'error', obj, msg }),
    child: () => log,
  };
  return { log: log as never, lines };
}

describe('event bus', () => {
  test('numbers, stamps and keeps events (bounded history), filters them, hands the chosen kinds to the sinks', async () => {
    const got: NotifyEvent[] = [];
    const sink: SinkSpec = { name: 'test', deliver: async (e) => { got.push(e); }, queue: 100, retry: { retries: 0, backoffMs: 1, maxBackoffMs: 1 } };
    const bus = new EventBus({ cluster: 'c', node: 'n1', incarnation: () => 42, config: { ...baseConfig, history: 10, events: ['failover', 'state'] }, sinks: [sink] });
    const heard: number[] = [];
    bus.on('event', (e: NotifyEvent) => heard.push(e.sequence));
    for (let i = 0; i < 15; i++) {
      bus.publish({ module: i % 2 ? 'db' : 'web', kind: i === 3 ? 'checker' : 'state', from: 'A', to: 'B', cause: `#${i}` });
    }
    assert.equal(bus.sequence, 15);
    assert.deepEqual(heard, Array.from({ length: 15 }, (_, i) => i + 1), 'listeners hear every event, in order');
    const kept = bus.events();
    assert.equal(kept.length, 10, 'the history is bounded');
    assert.deepEqual(kept.map((e) => e.sequence), [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    assert.ok(kept.every((e) => e.node === 'n1' && e.cluster === 'c' && e.incarnation === 42 && !Number.isNaN(Date.parse(e.time))));
    assert.deepEqual(bus.events({ module: 'db', since: 10 }).map((e) => e.sequence), [12, 14]); // i odd: db, sequence i + 1
    assert.deepEqual(bus.events({ limit: 2 }).map((e) => e.sequence), [14, 15]);
    assert.deepEqual(bus.events({ node: 'n2' }), []);
    await waitFor('sink', () => got.length === 14);
    assert.ok(!got.some((e) => e.kind === 'checker'), 'kinds not in notify.events are not sent (the history keeps them)');
    assert.deepEqual(bus.counters().test, { sent: 14, failed: 0, dropped: 0, queued: 0 });
    await bus.close(100);
  });

  test('publish never waits for a sink: a receiver that hangs does not hold the publisher', async () => {
    let release!: () => void;
    const hang = new Promise<void>((r) => { release = r; });
    const bus = new EventBus({ cluster: 'c', node: 'n1', incarnation: () => 1, config: baseConfig,
      sinks: [{ name: 'slow', deliver: () => hang, queue: 5, retry: { retries: 0, backoffMs: 1, maxBackoffMs: 1 } }] });
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) bus.publish({ module: 'db', kind: 'state', from: 'A', to: 'B', cause: String(i) });
    assert.ok(performance.now() - t0 < 500, `1000 publishes took ${Math.round(performance.now() - t0)} ms with a hung receiver`);
    const c = bus.counters().slow!;
    assert.equal(c.queued, 5 + 1, 'at most the queue bound waits, plus the one in delivery');
    assert.equal(c.dropped, 1000 - 6);
    release();
    await bus.close(1000);
  });

  test('a runtime\'s events become records: transitions (with their kind), checker verdicts, suppressed ones, split brain', () => {
    const bus = new EventBus({ cluster: 'c', node: 'n2', incarnation: () => 1, config: baseConfig, sinks: [] });
    const rt = new EventEmitter();
    publishRuntimeEvents(bus, 'mirror', rt);
    rt.emit('transition', { module: 'db', from: 'SECOND', to: 'ALONE', cause: 'peer lost' });
    rt.emit('checker_change', { module: 'db', checker: 'pg', healthy: false, detail: 'refused' });
    rt.emit('suppressed', { module: 'db', checker: 'pg', healthy: false, detail: 'refused', wouldDo: 'restart' });
    rt.emit('split_brain', { module: 'db', reason: 'the peer ran alone too', folder: '/var/lib/croft/mirror/db/quarantine/x' });
    const got = bus.events().map((e) => ({ kind: e.kind, from: e.from, to: e.to, cause: e.cause, checker: e.checker, suppressed: e.suppressed }));
    assert.deepEqual(got, [
      { kind: 'failover', from: 'SECOND', to: 'ALONE', cause: 'peer lost', checker: undefined, suppressed: undefined },
      { kind: 'checker', from: 'healthy', to: 'failed', cause: 'refused', checker: 'pg', suppressed: undefined },
      { kind: 'checker', from: 'healthy', to: 'failed', cause: 'refused; on_failure restart suppressed (maintenance)', checker: 'pg', suppressed: true },
      { kind: 'split_brain', from: null, to: null, cause: 'the peer ran alone too; what this node wrote alone is in /var/lib/croft/mirror/db/quarantine/x', checker: undefined, suppressed: undefined },
    ]);
  });

  test('the kind of a state change: mirror failover and end of reintegration; everything else is state', () => {
    assert.equal(transitionKind('mirror', 'SECOND', 'ALONE'), 'failover');
    assert.equal(transitionKind('mirror', 'ALONE', 'PRIM'), 'reintegration_done');
    assert.equal(transitionKind('mirror', 'WAIT', 'SECOND'), 'reintegration_done');
    assert.equal(transitionKind('mirror', 'WAIT', 'ALONE'), 'state');
    assert.equal(transitionKind('farm', 'WAIT', 'UP'), 'state');
    assert.equal(describeEvent({ ...event(3), kind: 'failover', from: 'SECOND', to: 'ALONE', cause: 'peer lost' }), 'failover db on n1: SECOND -> ALONE: peer lost');
    assert.equal(describeEvent({ ...event(4), module: null, kind: 'peer', peer: 'n2', from: 'UP', to: 'DOWN', cause: 'no heartbeat' }), 'peer n2 on n1: UP -> DOWN: no heartbeat');
  });
});

describe('sink queue', () => {
  test('bounded: when full the oldest waiting event is dropped, counted and logged (not once per drop)', async () => {
    const { log, lines } = recordingLog();
    const delivered: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const q = new SinkQueue('t', async (e) => { await gate; delivered.push(e.sequence); }, 3, { retries: 0, backoffMs: 1, maxBackoffMs: 1 }, log);
    for (let i = 1; i <= 10; i++) q.push(event(i));
    // 1 is being delivered; 2..7 were dropped to keep 3 waiting: 8, 9, 10.
    assert.equal(q.counters.dropped, 6);
    assert.equal(q.queued, 4);
    const drops = lines.filter((l) => l.obj.event === 'notify_dropped');
    assert.equal(drops.length, 1, 'a burst of drops is one log line');
    assert.match(drops[0]!.msg, /queue full \(3 events\)/);
    release();
    await waitFor('drain', () => q.queued === 0);
    assert.deepEqual(delivered, [1, 8, 9, 10], 'the newest events are kept, in order');
    assert.deepEqual(q.counters, { sent: 4, failed: 0, dropped: 6 });
  });

  test('in order, one at a time, even when deliveries take different times', async () => {
    const seen: number[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const q = new SinkQueue('t', async (e) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await sleep((e.sequence * 7) % 5);
      seen.push(e.sequence);
      concurrent--;
    }, 100, { retries: 0, backoffMs: 1, maxBackoffMs: 1 });
    for (let i = 1; i <= 30; i++) q.push(event(i, i % 3 ? 'a' : 'b'));
    await waitFor('all', () => seen.length === 30);
    assert.deepEqual(seen, Array.from({ length: 30 }, (_, i) => i + 1));
    assert.equal(maxConcurrent, 1);
  });

  test('retries with a doubling backoff, then succeeds; gives up after `retries` and counts it failed', async () => {
    const { log, lines } = recordingLog();
    const attemptsAt: number[] = [];
    let failFirst = 3;
    const q = new SinkQueue('t', async () => {
      attemptsAt.push(performance.now());
      if (failFirst-- > 0) throw new Error('receiver down');
    }, 10, { retries: 3, backoffMs: 40, maxBackoffMs: 100 }, log);
    q.push(event(1));
    await waitFor('sent', () => q.counters.sent === 1);
    assert.equal(attemptsAt.length, 4);
    const gaps = attemptsAt.slice(1).map((t, i) => t - attemptsAt[i]!);
    assert.ok(gaps[0]! >= 38 && gaps[1]! >= 78 && gaps[2]! >= 98, `backoff 40, 80, then capped at 100 ms: ${gaps.map(Math.round).join(', ')}`);
    assert.ok(gaps[2]! < 400, `capped: ${Math.round(gaps[2]!)}`);
    assert.equal(lines.filter((l) => l.obj.event === 'notify_retry').length, 3);

    const q2 = new SinkQueue('t2', async () => { throw new Error('HTTP 500'); }, 10, { retries: 2, backoffMs: 5, maxBackoffMs: 5 }, log);
    q2.push(event(2));
    q2.push(event(3));
    await waitFor('failed', () => q2.counters.failed === 2);
    assert.deepEqual(q2.counters, { sent: 0, failed: 2, dropped: 0 });
    assert.ok(lines.some((l) => l.obj.event === 'notify_failed' && /not delivered after 3 attempt/.test(l.msg)));
  });

  test('close ends retries and counts what still waited as dropped', async () => {
    const q = new SinkQueue('t', async () => { throw new Error('down'); }, 10, { retries: 100, backoffMs: 10_000, maxBackoffMs: 10_000 });
    q.push(event(1));
    q.push(event(2));
    const t0 = performance.now();
    await q.close(50);
    assert.ok(performance.now() - t0 < 1000, 'a backoff does not hold the close');
    assert.deepEqual(q.counters, { sent: 0, failed: 1, dropped: 1 });
  });
});

describe('webhook', () => {
  test('a JSON POST of the record; a 500 is retried; every event arrives once, in order', async () => {
    const bodies: NotifyEvent[] = [];
    let fails = 2;
    const server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => { text += c.toString(); });
      req.on('end', () => {
        assert.equal(req.headers['content-type'], 'application/json');
        if (fails-- > 0) { res.statusCode = 500; res.end('no'); return; }
        bodies.push(JSON.parse(text) as NotifyEvent);
        res.statusCode = 204;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const cfg = toNotifyConfig({ webhook: { url: `http://127.0.0.1:${port}/hook`, backoff_ms: 10, timeout_ms: 1000 } }, '/etc/croft');
    const bus = new EventBus({ cluster: 'c', node: 'n1', incarnation: () => 9, config: cfg });
    try {
      for (let i = 0; i < 20; i++) bus.publish({ module: i % 2 ? 'db' : 'web', kind: 'state', from: 'WAIT', to: 'UP', cause: `#${i}` });
      await waitFor('20 events', () => bodies.length === 20);
      assert.deepEqual(bodies.map((b) => b.sequence), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.deepEqual(Object.keys(bodies[0]!).sort(), ['cause', 'cluster', 'from', 'incarnation', 'kind', 'module', 'node', 'sequence', 'time', 'to']);
      assert.deepEqual(bus.counters().webhook, { sent: 20, failed: 0, dropped: 0, queued: 0 });
    } finally {
      await bus.close(100);
      server.close();
    }
  });

  test('a receiver that never answers is a failure after timeout_ms (not a hang)', async () => {
    const server = http.createServer(() => { /* never answers */ });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const deliver = webhookDeliver({ url: `http://127.0.0.1:${port}/`, timeoutMs: 150, retries: 0, backoffMs: 10, maxBackoffMs: 10, queue: 10 });
    const t0 = performance.now();
    await assert.rejects(deliver(event(1)), /within 150 ms/);
    assert.ok(performance.now() - t0 < 1500);
    server.closeAllConnections();
    server.close();
  });
});

describe('exec hook', () => {
  const hook = (name: string, body: string, mode = 0o755): string => {
    const p = path.join(root, name);
    fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode });
    fs.chmodSync(p, mode);
    return p;
  };

  test('runs the program with the event as arguments and environment, without a shell', async () => {
    const out = path.join(root, 'hook.out');
    const p = hook('hook-ok', `printf '%s|' "$@" > ${out}; echo "$CROFT_EVENT_KIND $CROFT_EVENT_MODULE $CROFT_EVENT_SEQUENCE $CROFT_EVENT_CAUSE" >> ${out}; printf '%s' "$CROFT_EVENT_JSON" > ${out}.json`);
    const e = { ...event(5), cause: 'it is $(touch /tmp/croft-pwned) `x`; "quoted"' };
    await execDeliver({ program: p, timeoutMs: 2000, killGraceMs: 100, queue: 10 })(e);
    const text = fs.readFileSync(out, 'utf8');
    assert.equal(text.split('\n')[0], 'state|db|PRIM|WAIT|state db 5 it is $(touch /tmp/croft-pwned) `x`; "quoted"');
    assert.deepEqual(JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')), e);
    assert.equal(eventEnv({ ...e, module: null }).CROFT_EVENT_MODULE, '');
  });

  test('killed past its timeout: a failure, within the bound', async () => {
    const marker = path.join(root, 'slow.done');
    const p = hook('hook-slow', `sleep 30; touch ${marker}`);
    const t0 = performance.now();
    await assert.rejects(execDeliver({ program: p, timeoutMs: 200, killGraceMs: 100, queue: 10 })(event(1)), /ran past 200 ms and was killed/);
    const took = performance.now() - t0;
    assert.ok(took < 2000, `ended in ${Math.round(took)} ms`);
    await sleep(100);
    assert.ok(!fs.existsSync(marker));
  });

  test('refused, not run, when the program became writable by group or others', async () => {
    const marker = path.join(root, 'perm.ran');
    const p = hook('hook-perm', `touch ${marker}`);
    fs.chmodSync(p, 0o777);
    await assert.rejects(execDeliver({ program: p, timeoutMs: 2000, killGraceMs: 100, queue: 10 })(event(1)), /refused to run: the notify program .* is writable by its group and other users.*chmod go-w/);
    assert.ok(!fs.existsSync(marker), 'the program did not run');
    fs.chmodSync(p, 0o775);
    await assert.rejects(execDeliver({ program: p, timeoutMs: 2000, killGraceMs: 100, queue: 10 })(event(1)), /writable by its group/);
    fs.chmodSync(p, 0o755);
    await execDeliver({ program: p, timeoutMs: 2000, killGraceMs: 100, queue: 10 })(event(1));
    assert.ok(fs.existsSync(marker));
  });
});

describe('syslog', () => {
  test('UDP, RFC 5424: PRI (daemon.warning for a failover), version, timestamp, host, APP-NAME croft, MSGID the kind', async () => {
    const sock = dgram.createSocket('udp4');
    const got: string[] = [];
    sock.on('message', (m) => got.push(m.toString('utf8')));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const port = sock.address().port;
    const cfg = toNotifyConfig({ syslog: { target: `udp://127.0.0.1:${port}` } }, '/etc/croft').syslog!;
    assert.equal(cfg.format, 'rfc5424');
    const e = { ...event(4), kind: 'failover' as const, from: 'SECOND', to: 'ALONE', cause: 'peer lost' };
    await syslogDeliver(cfg)(e);
    await waitFor('datagram', () => got.length === 1);
    sock.close();
    const m = /^<(\d+)>1 (\S+) (\S+) croft (\d+) failover - (.*)$/.exec(got[0]!);
    assert.ok(m, got[0]);
    assert.equal(Number(m[1]), 3 * 8 + 4);
    assert.equal(m[2], e.time);
    assert.match(m[5]!, /^failover db on n1: SECOND -> ALONE: peer lost \{/);
    assert.equal(JSON.parse(m[5]!.slice(m[5]!.indexOf('{'))).sequence, 4);
  });

  test('RFC 3164 text: <PRI>Mmm dd hh:mm:ss host croft[pid]: message', () => {
    const line = formatSyslog(event(1), 'rfc3164', 'local3', 'node1.example', 1234);
    assert.match(line, /^<157>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d node1 croft\[1234\]: state db on n1: PRIM -> WAIT: cause 1 \{/);
  });

  test('the local socket (a unix datagram socket like /dev/log) through logger(1), RFC 3164; a missing socket is a failure', async () => {
    const sockPath = path.join(root, 'log.sock');
    const outFile = path.join(root, 'log.got');
    // Node has no unix datagram socket: the receiver is a few lines of Python.
    const py = spawn('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); print('ready', flush=True)
d = s.recv(65536)
open(sys.argv[2], 'wb').write(d)
`, sockPath, outFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((r) => py.stdout!.once('data', () => r()));
      const cfg = toNotifyConfig({ syslog: { target: sockPath } }, '/etc/croft').syslog!;
      assert.equal(cfg.format, 'rfc3164');
      await syslogDeliver(cfg)({ ...event(2), kind: 'checker', checker: 'db', from: 'healthy', to: 'failed', cause: 'connection refused' });
      await waitFor('datagram', () => fs.existsSync(outFile) && fs.statSync(outFile).size > 0);
      const got = fs.readFileSync(outFile, 'utf8');
      assert.match(got, /^<28>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d \S+ croft\[\d+\]: checker db checker db on n1: healthy -> failed: connection refused \{/);
    } finally {
      py.kill('SIGKILL');
    }
    await assert.rejects(syslogDeliver({ target: { type: 'unix', path: path.join(root, 'none.sock') }, format: 'rfc3164', facility: 'daemon', queue: 1 })(event(1)), /logger to .* failed/);
  });
});

describe('the daemon', () => {
  test('config mismatch (the call other parts make), peer and maintenance events reach the webhook; /metrics counts them', async () => {
    const { loadConfig } = await import('../../src/config/load.js');
    const { Daemon } = await import('../../top/daemon/daemon.js');
    const { buildApi } = await import('../../top/api/app.js');
    const { silentLogger } = await import('../../src/log/logger.js');
    const { closeApi, writeApiConfig } = await import('./api-fixture.js');
    const bodies: NotifyEvent[] = [];
    const server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => { text += c.toString(); });
      req.on('end', () => { bodies.push(JSON.parse(text) as NotifyEvent); res.statusCode = 200; res.end(); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const dir = path.join(root, 'daemon-config');
    writeApiConfig(dir, 'nt', []);
    fs.appendFileSync(path.join(dir, 'cluster.yaml'), `\nstate_dir: ${path.join(root, 'daemon-state')}\nnotify:\n  events: [config_mismatch, maintenance]\n  webhook: { url: "http://127.0.0.1:${port}/" }\n`);
    const daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    const app = buildApi(daemon, { local: true });
    try {
      daemon.notifyConfigMismatch('n2', 'web', 'sha256:aaa', 'sha256:bbb', 'scripts.timeout_ms');
      daemon.setMaintenance(null, true, 'test');
      await waitFor('2 posts', () => bodies.length === 2);
      assert.deepEqual(bodies.map((b) => [b.kind, b.module, b.from, b.to]), [['config_mismatch', 'web', 'sha256:aaa', 'sha256:bbb'], ['maintenance', null, 'off', 'on']]);
      assert.equal(bodies[0]!.cause, 'module web differs on n2: scripts.timeout_ms');
      // The server has both bodies before the notifier has read its answers: the count follows.
      const sent = /^croft_notifications_sent_total\{sink="webhook"\} 2$/m;
      let metrics = '';
      await pollUntil('2 sent in /metrics', async () => sent.test(metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body));
      assert.match(metrics, /^croft_notifications_failed_total\{sink="webhook"\} 0$/m);
      assert.match(metrics, /^croft_notifications_dropped_total\{sink="webhook"\} 0$/m);
      assert.match(metrics, /^croft_events_total 2$/m);
      assert.match(metrics, /^croft_node_maintenance 1$/m);
      // The events route's query: integers or a 400, never a crash; any text filters to nothing.
      for (const q of ['limit=0', 'since=-1', 'limit=1e3', `since=${'9'.repeat(40)}`, 'limit=%00']) {
        const r = await app.inject({ method: 'GET', url: `/api/v1/events?${q}` });
        assert.equal(r.statusCode, 400, q);
        assert.equal(r.json().error, 'CROFT_ERR_USAGE');
      }
      const odd = await app.inject({ method: 'GET', url: `/api/v1/events?module=${encodeURIComponent('<script>"x')}&kind=${'k'.repeat(5000)}` });
      assert.equal(odd.statusCode, 200);
      assert.deepEqual(odd.json().events, []);
      const last = await app.inject({ method: 'GET', url: '/api/v1/events?since=1&limit=5' });
      assert.deepEqual(last.json().events.map((e: NotifyEvent) => e.kind), ['maintenance']);
    } finally {
      await daemon.events.close(100);
      server.close();
      await closeApi([app], daemon, dir);
    }
  });
});
