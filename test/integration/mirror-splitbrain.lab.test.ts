// Split brain: the heartbeat link between the two nodes is cut (lab.partition) while both still
// reach the witness in the lab's client namespace. (a) redis (a real redis-server, appendonly):
// exactly one side runs the application during the cut; after heal nothing acknowledged is lost.
// (b) ping: both sides reach the address, so both run alone (a split brain, by design: a ping
// witness gives no mutual exclusion); after heal the tie-break keeps one, the loser's lines go to
// its quarantine folder. The writer (test/fixtures/mirror-ack) reports each fsync'd line to a
// collector in the client namespace. Figures on '# ' lines.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import { sleep, waitFor } from '../helpers/cluster.js';
import {
  ACK_FILE, ACK_MODULE, ackConfig, assertSequence, cat, Collector, lines, mirrorStatus, primOnN1, waitStates, writerPid,
} from '../helpers/mirror-lab.js';

const CUT_MS = 5000;
const primary = (s: string | undefined) => s === 'PRIM' || s === 'ALONE';

interface Sample { atMs: number; n1: string; n2: string; w1: boolean; w2: boolean }

/** Both sides' states and writers, every ~150 ms for `forMs`. */
async function sample(lab: Lab, forMs: number): Promise<Sample[]> {
  const out: Sample[] = [];
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    const [s1, s2, w1, w2] = await Promise.all([mirrorStatus(lab, 'n1'), mirrorStatus(lab, 'n2'), writerPid(lab, 'n1'), writerPid(lab, 'n2')]);
    out.push({ atMs: Date.now(), n1: s1?.state ?? '?', n2: s2?.state ?? '?', w1: w1 !== null, w2: w2 !== null });
    await sleep(150);
  }
  return out;
}

function summary(samples: Sample[]): string {
  const seen = new Map<string, number>();
  for (const s of samples) {
    const k = `n1 ${s.n1}${s.w1 ? '+writer' : ''} / n2 ${s.n2}${s.w2 ? '+writer' : ''}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  return [...seen].map(([k, n]) => `${k} x${n}`).join('; ');
}

/** The quarantined copies of lines.txt on `node` (host paths), newest last. */
function quarantined(lab: Lab, node: string): string[] {
  const root = path.join(lab.stateDir, 'nodes', node, 'var-lib-croft', 'mirror', ACK_MODULE, 'quarantine');
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).sort().map((stamp) => path.join(root, stamp, ACK_FILE.replace(/^\//, ''))).filter((f) => fs.existsSync(f));
}

/** A lab whose mirror-ack module has `witness` (it needs the client address: daemons start after). */
async function labWith(name: string, witness: (client: string) => string): Promise<{ lab: Lab; config: string }> {
  const config = ackConfig();
  const lab = await Lab.up({ name, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500, daemons: false });
  fs.appendFileSync(path.join(lab.configDir, 'modules', ACK_MODULE, 'module.yaml'), witness(lab.clientAddresses()[0]!));
  return { lab, config };
}

async function startDaemons(lab: Lab): Promise<void> {
  await lab.start('n1');
  await lab.start('n2');
}

describe('mirror split brain, redis witness: one side runs the application during a cut', { timeout: 150_000 }, () => {
  let lab: Lab | undefined;
  let config: string | undefined;
  let collector: Collector | undefined;
  let redis: ChildProcess | undefined;
  let redisDir: string | undefined;
  beforeAll(async () => {
    ({ lab, config } = await labWith(`ms${process.pid % 100000}`, (c) => `witness:\n  type: redis\n  url: redis://${c}:6379\n`));
    redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-redis-'));
    const client = lab.clientAddresses()[0]!;
    const [cmd, ...args] = lab.enterArgv('client', ['redis-server', '--bind', client, '--port', '6379', '--appendonly', 'yes', '--dir', redisDir, '--save', '', '--protected-mode', 'no']);
    redis = spawn(cmd!, args, { stdio: 'ignore' });
    await waitFor('redis answers', async () => (await lab!.exec('client', ['redis-cli', '-h', client, 'ping'])).stdout.includes('PONG'), 10_000, 100);
    collector = await Collector.start(lab);
    await startDaemons(lab);
  });
  afterAll(async () => {
    await collector?.stop();
    // Our redis, by its pid, before the lab goes (lab down would kill the client's processes too).
    if (redis?.pid && redis.exitCode === null) { try { process.kill(redis.pid, 'SIGKILL'); } catch { /* already gone */ } }
    await lab?.down();
    if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true });
    if (config) fs.rmSync(config, { recursive: true, force: true });
  });

  test('cut: exactly one side primary with the writer; heal: every acknowledged line on both', async () => {
    const l = lab!;
    const c = collector!;
    await primOnN1(l, c, { mirroredMs: 30_000, ackMs: 10_000 });
    await sleep(500);

    await l.partition([['n1'], ['n2']]);
    let samples: Sample[];
    try {
      await sleep(1500); // heartbeat timeout, witness contention
      samples = await sample(l, CUT_MS);
    } finally {
      await l.partition([]);
    }
    console.log(`# redis, cut ${CUT_MS} ms: ${summary(samples)}`);
    for (const s of samples) {
      assert.ok(!(primary(s.n1) && primary(s.n2)), `never two primaries: n1 ${s.n1}, n2 ${s.n2}`);
      assert.ok(!(s.w1 && s.w2), 'never two writers');
    }
    const last = samples[samples.length - 1]!;
    const winner = primary(last.n1) ? 'n1' : primary(last.n2) ? 'n2' : null;
    assert.ok(winner, `one side runs the application at the end of the cut (${last.n1} / ${last.n2})`);
    const loser = winner === 'n1' ? 'n2' : 'n1';
    assert.ok(samples.slice(-5).every((s) => (winner === 'n1' ? s.w1 : s.w2)), `the writer runs on ${winner}`);

    const healT0 = Date.now();
    await waitStates(l, { [winner]: 'PRIM', [loser]: 'SECOND' }, 30_000);
    console.log(`# redis: ${winner} kept the application; healed -> PRIM+SECOND in ${Date.now() - healT0} ms; quarantine on ${loser}: ${quarantined(l, loser).length} folder(s)`);
    await sleep(500);
    const pid = (await writerPid(l, winner))!;
    await l.exec(winner, ['kill', '-STOP', String(pid)]);
    try {
      await sleep(100);
      const acked = c.maxAcked();
      const a = await cat(l, winner, ACK_FILE);
      assertSequence(lines(a), `${winner}'s file`);
      assert.ok(lines(a).length >= acked, `every acknowledged line (${acked}) is in ${winner}'s file (1..${lines(a).length})`);
      assert.equal(await cat(l, loser, ACK_FILE), a, `${loser} holds ${winner}'s file`);
      console.log(`# redis: ${acked} lines acknowledged in all, none lost; both nodes hold 1..${lines(a).length}`);
    } finally {
      await l.exec(winner, ['kill', '-CONT', String(pid)]);
    }
    // With redis the loser never ran alone: nothing of its own to quarantine.
    assert.deepEqual(quarantined(l, loser), [], `${loser} never wrote alone: no quarantine`);
  });
});

describe('mirror split brain, ping witness: both sides run alone during a cut, the loser is quarantined', { timeout: 150_000 }, () => {
  let lab: Lab | undefined;
  let config: string | undefined;
  let collector: Collector | undefined;
  beforeAll(async () => {
    ({ lab, config } = await labWith(`mp${process.pid % 100000}`, (c) => `witness:\n  type: ping\n  addresses: [${c}]\n`));
    collector = await Collector.start(lab);
    await startDaemons(lab);
  });
  afterAll(async () => {
    await collector?.stop();
    // Keep the daemons' logs of the last run for a person looking into a failure.
    if (lab) for (const n of ['n1', 'n2']) fs.cpSync(path.join(lab.stateDir, 'nodes', n, 'daemon.log'), path.join(os.tmpdir(), `croft-splitbrain-ping-${n}.log`));
    await lab?.down();
    if (config) fs.rmSync(config, { recursive: true, force: true });
  });

  test('cut: n1 and n2 both ALONE with a writer; heal: n1 (croft prim) wins, n2 quarantines its lines', async () => {
    const l = lab!;
    const c = collector!;
    await primOnN1(l, c, { mirroredMs: 30_000, ackMs: 10_000 });
    await sleep(500);

    const cutAtMs = Date.now();
    await l.partition([['n1'], ['n2']]);
    let samples: Sample[];
    try {
      await waitStates(l, { n1: 'ALONE', n2: 'ALONE' }, 15_000);
      samples = await sample(l, 2000);
      await waitFor('n2 acknowledging', () => c.reports().some((r) => r.node === 'n2' && r.atMs > cutAtMs), 10_000);
    } finally {
      await l.partition([]);
    }
    const healAtMs = Date.now();
    console.log(`# ping, cut: ${summary(samples)} (the documented split brain)`);
    const both = samples.filter((s) => s.n1 === 'ALONE' && s.n2 === 'ALONE' && s.w1 && s.w2).length;
    assert.ok(both > 0, 'a ping witness lets both sides run alone during the cut');
    const n2Acked = c.reports().filter((r) => r.node === 'n2' && r.atMs > cutAtMs);
    assert.ok(n2Acked.length > 0, 'n2 acknowledged lines of its own during the cut');

    await waitStates(l, { n1: 'PRIM', n2: 'SECOND' }, 30_000);
    console.log(`# ping: healed -> n1 PRIM, n2 SECOND in ${Date.now() - healAtMs} ms (n1 came from croft prim: it wins the tie-break)`);
    // n2's own lines, written alone, are in its quarantine folder.
    const q = quarantined(l, 'n2');
    assert.ok(q.length > 0, 'n2 quarantined lines.txt');
    const kept = lines(fs.readFileSync(q[q.length - 1]!, 'utf8'));
    assertSequence(kept, "n2's quarantined lines.txt");
    const n2Max = Math.max(...n2Acked.map((r) => r.n));
    assert.ok(kept.length >= n2Max, `every line n2 acknowledged alone (up to ${n2Max}) is in its quarantine (1..${kept.length})`);
    console.log(`# ping: n2 acknowledged ${n2Acked.length} lines alone (up to ${n2Max}); its quarantine ${path.relative(l.stateDir, q[q.length - 1]!)} holds 1..${kept.length}`);

    // The winner's data on both, with every line n1 acknowledged.
    await sleep(500);
    const pid = (await writerPid(l, 'n1'))!;
    await l.exec('n1', ['kill', '-STOP', String(pid)]);
    try {
      await sleep(100);
      const a = await cat(l, 'n1', ACK_FILE);
      assertSequence(lines(a), "n1's file");
      assert.ok(lines(a).length >= c.maxAcked('n1'), `every line n1 acknowledged (${c.maxAcked('n1')}) is in its file`);
      assert.equal(await cat(l, 'n2', ACK_FILE), a, "n2 holds n1's file");
    } finally {
      await l.exec('n1', ['kill', '-CONT', String(pid)]);
    }
    const v = await l.exec('n1', ['croft', 'mirror', 'verify', ACK_MODULE]);
    assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
  });
});
