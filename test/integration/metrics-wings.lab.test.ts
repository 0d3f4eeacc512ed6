// The wings' metrics scraped from the daemons' /metrics in a real 3-node lab (issue 12, part 8):
// a mirror (mirror-ack on n1 and n2, with verify_every, resync_max_bytes_per_s and an excluded
// path) and a farm (the shipped nginx-farm on n1, n2, n3). During a reintegration capped at
// 4 MiB/s: dirty bytes > 0 while ALONE, then the reintegration's bytes rising at a rate under the
// cap with an ETA, then done (counter +1, link up, dirty 0). During a farm failover (lab crash of
// n3): the buckets owned move to n1 and n2 and the takeovers counter increments. The scheduled
// verify reports identical, then, after a byte changed behind croft's back on the SECOND, a
// difference, with a verify_diverged event. Figures on '# ' lines.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { holdScript } from '../../top/lab/holders.js';
import { Lab } from '../../top/lab/index.js';
import { nodeApi, sleep, waitFor } from '../helpers/cluster.js';
import { ACK_DIR, ACK_MODULE, ackConfig, Collector, primOnN1, waitStates } from '../helpers/mirror-lab.js';
import { repoRoot } from '../helpers/paths.js';

const CAP = 4 * 1024 * 1024;
const DIRTY_MIB = 24;
const VIP = '10.77.0.100';

async function scrape(lab: Lab, node: string): Promise<string> {
  const r = await nodeApi<string>(lab, node, 'GET', '/metrics');
  assert.equal(r.status, 200);
  return r.body;
}

/** The sample `name{labels...}` whose labels include every one of `want` (null when absent). */
function metric(text: string, name: string, want: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(want).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

const m = (text: string, name: string, extra: Record<string, string> = {}) => metric(text, name, { module: ACK_MODULE, ...extra });

describe('metrics of the wings during a reintegration and a farm failover', { timeout: 150_000 }, () => {
  let lab: Lab | undefined;
  let collector: Collector | undefined;
  let holder: ChildProcess | undefined;
  let config: string;
  beforeAll(async () => {
    config = ackConfig(`resync_max_bytes_per_s: ${CAP}\nverify_every: 5s\n`);
    const file = path.join(config, 'modules', ACK_MODULE, 'module.yaml');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(`dirs: [${ACK_DIR}]`, `dirs:\n  - path: ${ACK_DIR}\n    exclude: [scratch]`));
    fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), path.join(config, 'modules', 'web'), { recursive: true });
    lab = await Lab.up({ name: `mw${process.pid % 100000}`, nodes: 3, clients: 20, config, intervalMs: 100, timeoutMs: 500 });
    collector = await Collector.start(lab);
  });
  afterAll(async () => {
    if (holder?.exitCode === null) holder.kill('SIGKILL');
    await collector?.stop();
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('mirror: link, replication, ack latency, scheduled verify, excluded path; then a capped reintegration seen in the metrics', async () => {
    const l = lab!;
    await primOnN1(l, collector!);
    let t = await scrape(l, 'n1');
    await waitFor('n1: link up, verified identical on schedule', async () => {
      t = await scrape(l, 'n1');
      return m(t, 'croft_mirror_link_up') === 1 && m(t, 'croft_mirror_verify_last_result') === 1;
    }, 20_000, 200);
    assert.ok(m(t, 'croft_mirror_verifies_total', { result: 'identical' })! >= 1);
    assert.equal(m(t, 'croft_mirror_verify_every_seconds'), 5);
    assert.equal(m(t, 'croft_mirror_resync_max_bytes_per_second'), CAP);
    assert.ok(m(t, 'croft_mirror_replicated_ops_total')! > 0, 'the writer\'s changes were acknowledged');
    assert.ok(m(t, 'croft_mirror_replicated_bytes_total')! > 0);
    const count = m(t, 'croft_mirror_ack_latency_seconds_count')!;
    assert.ok(count > 0 && m(t, 'croft_mirror_ack_latency_seconds_bucket', { le: '+Inf' }) === count);
    assert.ok(m(t, 'croft_mirror_ack_latency_seconds_bucket', { le: '2.5' })! <= count);
    console.log(`# n1 PRIM: ${m(t, 'croft_mirror_replicated_ops_total')} changes acked, ack latency mean ${(1000 * m(t, 'croft_mirror_ack_latency_seconds_sum')! / count).toFixed(2)} ms over ${count}`);
    const text = (await l.exec('n1', ['croft', 'mirror', 'status', ACK_MODULE])).stdout;
    assert.match(text, /^verify: every 5000 ms; last here: identical \(\d+ entries, .*, scheduled\) at /m);
    assert.match(text, new RegExp(`^excluded \\(not replicated\\): ${ACK_DIR}: scratch$`, 'm'));
    assert.match(text, /^reintegration cap: 4\.0 MiB\/s$/m);
    // The excluded path stays on n1.
    assert.equal((await l.exec('n1', ['sh', '-c', `mkdir -p ${ACK_DIR}/scratch && echo local > ${ACK_DIR}/scratch/f && echo both > ${ACK_DIR}/shared`])).code, 0);
    assert.equal((await l.exec('n2', ['cat', `${ACK_DIR}/shared`])).stdout, 'both\n');
    assert.notEqual((await l.exec('n2', ['test', '-e', `${ACK_DIR}/scratch`])).code, 0, 'scratch is excluded: not on n2');

    // The SECOND goes away; n1 writes alone.
    const before = m(await scrape(l, 'n1'), 'croft_mirror_reintegrations_total', { result: 'done' })!;
    assert.equal((await l.exec('n2', ['croft', 'stop', ACK_MODULE])).code, 0);
    await waitStates(l, { n1: 'ALONE' }, 15_000);
    assert.equal((await l.exec('n1', ['dd', 'if=/dev/urandom', `of=${ACK_DIR}/big.bin`, 'bs=1M', `count=${DIRTY_MIB}`, 'conv=fsync', 'status=none'])).code, 0);
    await waitFor('n1: dirty bytes cover the big file', async () => {
      t = await scrape(l, 'n1');
      return m(t, 'croft_mirror_dirty_bytes')! >= DIRTY_MIB * 1024 * 1024;
    }, 10_000, 200);
    assert.equal(m(t, 'croft_mirror_link_up'), 0);
    console.log(`# n1 ALONE: croft_mirror_dirty_bytes ${m(t, 'croft_mirror_dirty_bytes')}`);

    // Back: the reintegration, capped, seen in the metrics as it runs.
    const t0 = Date.now();
    assert.equal((await l.exec('n2', ['croft', 'start', ACK_MODULE])).code, 0);
    const samples: { at: number; total: number; rate: number; toGo: number; eta: number }[] = [];
    await waitFor('the reintegration ends (metrics)', async () => {
      const s = await scrape(l, 'n1');
      if (m(s, 'croft_mirror_reintegration_running') === 1) {
        samples.push({ at: Date.now() - t0, total: m(s, 'croft_mirror_reintegration_bytes_total')!, rate: m(s, 'croft_mirror_reintegration_rate_bytes_per_second')!,
          toGo: m(s, 'croft_mirror_reintegration_bytes_to_go')!, eta: m(s, 'croft_mirror_reintegration_eta_seconds')! });
      }
      t = s;
      return m(s, 'croft_mirror_reintegrations_total', { result: 'done' }) === before + 1;
    }, 40_000, 250);
    const secs = (Date.now() - t0) / 1000;
    const running = samples.filter((s) => s.total > 0);
    console.log(`# reintegration of ${DIRTY_MIB} MiB capped at ${CAP} B/s: ${secs.toFixed(1)} s; ${samples.length} scrapes while running: `
      + running.map((s) => `${(s.at / 1000).toFixed(1)}s ${(s.total / 1048576).toFixed(1)}MiB ${(s.rate / 1048576).toFixed(2)}MiB/s eta ${s.eta.toFixed(1)}s`).join('; '));
    assert.ok(running.length >= 3, `scraped ${running.length} times with bytes copied while it ran`);
    assert.ok(running.at(-1)!.total > running[0]!.total, 'the reintegration bytes rose');
    assert.ok(running.some((s) => s.rate > 0 && s.toGo > 0 && s.eta >= 0), 'rate, bytes to go and ETA shown while it ran');
    assert.ok(running.every((s) => s.rate <= CAP * 1.02), `rate under the cap: ${running.map((s) => s.rate).join(', ')}`);
    // The big file is in the first pass, paced (only the freeze's last changes are not).
    assert.ok(secs >= DIRTY_MIB * 1048576 / CAP, `${secs} s for ${DIRTY_MIB} MiB at ${CAP} B/s`);
    await waitStates(l, { n1: 'PRIM', n2: 'SECOND' }, 10_000);
    t = await scrape(l, 'n1');
    assert.equal(m(t, 'croft_mirror_reintegration_running'), 0);
    assert.equal(m(t, 'croft_mirror_dirty_bytes'), 0);
    assert.equal(m(t, 'croft_mirror_link_up'), 1);
    assert.ok(m(t, 'croft_mirror_reintegration_bytes_total')! >= DIRTY_MIB * 1048576);
    assert.notEqual((await l.exec('n2', ['test', '-e', `${ACK_DIR}/scratch`])).code, 0, 'scratch is not reintegrated either');

    // A byte changed behind croft's back on the SECOND: the next scheduled verify finds it.
    assert.equal((await l.exec('n2', ['sh', '-c', `printf X | dd of=${ACK_DIR}/big.bin bs=1 seek=1000 conv=notrunc status=none`])).code, 0);
    await waitFor('a scheduled verify found the difference', async () => {
      t = await scrape(l, 'n1');
      return m(t, 'croft_mirror_verify_last_result') === 0;
    }, 25_000, 250);
    assert.ok(m(t, 'croft_mirror_verify_last_differences')! >= 1);
    assert.ok(m(t, 'croft_mirror_verifies_total', { result: 'diverged' })! >= 1);
    const ev = await nodeApi<{ events: { kind: string; module: string | null; cause: string }[] }>(l, 'n1', 'GET', `/api/v1/events?module=${ACK_MODULE}`);
    const diverged = ev.body.events.filter((e) => e.kind === 'verify_diverged');
    assert.ok(diverged.length >= 1, 'a verify_diverged event (notified through the bus)');
    assert.match(diverged[0]!.cause, /scheduled verify found \d+ difference/);
  });

  test('farm: buckets owned per node, connections, and a takeover when a node crashes', async () => {
    const l = lab!;
    const nodes = ['n1', 'n2', 'n3'];
    const owned = (text: string, node: string) => metric(text, 'croft_farm_buckets_owned', { module: 'web', node });
    let t = '';
    await waitFor('every node owns buckets (n1\'s metrics)', async () => {
      t = await scrape(l, 'n1');
      return nodes.every((n) => (owned(t, n) ?? 0) > 0);
    }, 30_000, 200);
    assert.equal(nodes.reduce((s, n) => s + owned(t, n)!, 0), 1024);
    const takeoversBefore = await Promise.all(['n1', 'n2'].map(async (n) => metric(await scrape(l, n), 'croft_farm_takeovers_total', { module: 'web' })!));
    // 20 keep-alive clients: each node counts its own connections to the VIP.
    holder = l.spawn('client', ['node', holdScript, JSON.stringify({ host: VIP, port: 80, sources: l.clientAddresses(), everyMs: 200 })],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    holder.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    await waitFor('every client answered once', () => out.startsWith('ready\n'), 20_000, 50);
    // The count is read off the JS thread at most once a second: the scrape shows the last one.
    let conns: number[] = [];
    await waitFor('every node counts the 20 connections where they are', async () => {
      conns = await Promise.all(nodes.map(async (n) => metric(await scrape(l, n), 'croft_farm_connections', { module: 'web' }) ?? -1));
      return conns.every((c) => c >= 0) && conns.reduce((s, c) => s + c, 0) === l.clientAddresses().length;
    }, 10_000, 300);
    console.log(`# farm: buckets ${nodes.map((n) => `${n} ${owned(t, n)}`).join(', ')}; connections to the VIP ${nodes.map((n, i) => `${n} ${conns[i]}`).join(', ')}`);
    assert.ok(conns.every((c) => c >= 0), 'every node exports its connections');
    assert.equal(conns.reduce((s, c) => s + c, 0), l.clientAddresses().length, 'the 20 clients\' connections, counted where they are');

    const n3Before = owned(t, 'n3')!;
    const t0 = Date.now();
    await l.crash('n3');
    await waitFor('n1 and n2 own every bucket, n3 none (n1\'s metrics)', async () => {
      t = await scrape(l, 'n1');
      return owned(t, 'n3') === null && (owned(t, 'n1') ?? 0) + (owned(t, 'n2') ?? 0) === 1024;
    }, 15_000, 100);
    const read = () => Promise.all(['n1', 'n2'].map(async (n) => {
      const s = await scrape(l, n);
      return { takeovers: metric(s, 'croft_farm_takeovers_total', { module: 'web' })!, buckets: metric(s, 'croft_farm_takeover_buckets', { module: 'web' })!,
        total: metric(s, 'croft_farm_takeover_buckets_total', { module: 'web' })!, members: metric(s, 'croft_farm_members', { module: 'web' }) };
    }));
    // n1's map is the first seen; n2 applies the same view change a few ms apart, on its own.
    let after = await read();
    await waitFor('n2 took over too (its own metrics)', async () => {
      after = await read();
      return after.every((a, i) => a.takeovers > takeoversBefore[i]!);
    }, 5_000, 100);
    console.log(`# farm failover (lab crash n3) seen in the metrics after ${Date.now() - t0} ms: buckets n1 ${owned(t, 'n1')}, n2 ${owned(t, 'n2')}; `
      + `takeovers n1 ${takeoversBefore[0]} -> ${after[0]!.takeovers} (${after[0]!.buckets} buckets), n2 ${takeoversBefore[1]} -> ${after[1]!.takeovers} (${after[1]!.buckets} buckets)`);
    after.forEach((a, i) => {
      assert.equal(a.takeovers, takeoversBefore[i]! + 1, `${['n1', 'n2'][i]}: one takeover`);
      assert.ok(a.buckets > 0 && a.total >= a.buckets, `${['n1', 'n2'][i]} holds buckets taken over`);
      assert.equal(a.members, 2);
    });
    assert.equal(after[0]!.buckets + after[1]!.buckets, n3Before, 'n3\'s buckets went to n1 and n2 as takeovers');
    holder.stdin!.end('stop\n');
    await sleep(200);
  });
});
