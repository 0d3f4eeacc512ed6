// `croft lab chaos` (issue 15): (1) a campaign of seeded random faults of every kind the lab can
// inject against a 3-node lab running the shipped nginx farm (every node) and PostgreSQL mirror
// (n1, n2) with a redis witness: no invariant broken in any round, the report printed on '# '
// lines; (2) a deliberately broken build of the addon (cargo feature chaos-ack-early: a change
// acknowledged before the peer's ack) run by a lab whose daemons load it: the campaign catches it
// within its rounds and prints the seed. The CLI's own checks of its options come first.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, test } from 'vitest';
import { FAULT_KINDS } from '../../top/lab/chaos-plan.js';
import { chaosLab, type ChaosLab } from '../../top/lab/chaos-setup.js';
import { runChaos } from '../../top/lab/chaos.js';
import { daemonCommand } from '../../top/lab/daemons.js';
import { run } from '../../top/lab/run.js';
import { croftBin, repoRoot } from '../helpers/paths.js';

const SEED = 20261207;

/** The daemons' logs of a campaign's lab, kept in /tmp/croft-<tag>-lab-<node>/ for a person looking into a violation. */
function keepLogs(built: ChaosLab | undefined, tag: string): void {
  if (!built) return;
  for (const n of built.lab.nodes) {
    const dir = path.join(os.tmpdir(), `croft-${tag}-lab-${n}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const log = path.join(built.lab.stateDir, 'nodes', n, 'daemon.log');
    if (fs.existsSync(log)) fs.cpSync(log, path.join(dir, 'daemon.log'));
  }
}
const KINDS = FAULT_KINDS;

async function croft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run([process.execPath, croftBin, ...args], { timeoutMs: 30_000 });
}

describe('croft lab chaos: usage errors', () => {
  test('bad options are refused with exit 2 and say why', async () => {
    for (const [args, why] of [
      [['--faults', 'kill,boom'], /unknown fault "boom"/],
      [['--faults', 'kill,kill'], /kill named twice/],
      [['--rounds', 'x'], /--rounds must be a whole number/],
      [['--rounds', '0'], /--rounds must be 1 or more/],
      [['--hold-ms', '10'], /--hold-ms must lie within/],
      [['--witness', 'ping', '--config', '/tmp'], /--witness must be redis/],
      [['--witness', 'redis'], /need --config/],
      [['n1'], /takes no arguments/],
    ] as const) {
      const r = await croft(['lab', 'chaos', '--name', 'nosuchlab', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, why, args.join(' '));
    }
    const r = await croft(['lab', 'chaos', '--name', 'nosuchlab', '--rounds', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no lab named nosuchlab is up/);
  });
});

describe('croft lab chaos: 30 rounds of every fault kind against nginx-farm and postgresql-mirror (3 nodes, redis witness)', { timeout: 400_000 }, () => {
  let built: ChaosLab | undefined;
  let config: string | undefined;
  afterAll(async () => {
    keepLogs(built, 'chaos');
    await built?.close();
    if (config) fs.rmSync(config, { recursive: true, force: true });
  });

  test('no invariant broken in any round; the report per fault kind', async () => {
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-chaos-'));
    fs.cpSync(path.join(repoRoot, 'modules', 'postgresql-mirror'), path.join(config, 'modules', 'postgresql-mirror'), { recursive: true });
    fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), path.join(config, 'modules', 'web'), { recursive: true });
    built = await chaosLab({ name: `ch${process.pid % 100000}`, nodes: 3, clients: 32, config, intervalMs: 100, timeoutMs: 500, witness: 'redis', ttlMs: 1000 });
    const r = await runChaos({
      lab: built.lab, rounds: 30, seed: SEED, kinds: KINDS, holdMs: [800, 1400], settleMs: 200, convergeMs: 30_000,
      witnessPid: built.witnessPid, disks: built.disks, log: (l) => console.log(l.startsWith('round ') || l.startsWith('chaos:') ? `# ${l}` : l),
    });
    for (const l of r.report) console.log(`# ${l}`);
    // One line, no diff after it: what a CI log's tail shows is the seed, the round and the first messages.
    assert.ok(r.violation === null, r.violation
      ? `seed ${SEED} round ${r.violation.round} (${r.rounds.at(-1)?.kind} ${r.rounds.at(-1)?.target}): ${r.violation.messages.slice(0, 3).join(' | ').slice(0, 600)}`
      : '');
    assert.equal(r.rounds.length, 30);
    assert.deepEqual([...new Set(r.rounds.map((x) => x.kind))].sort(), [...KINDS].sort(), 'every fault kind ran');
    // Failovers happened (faults on the primary) and every round converged within the bound.
    assert.ok(r.rounds.some((x) => x.failoverMs !== null), 'at least one failover');
    assert.ok(r.rounds.every((x) => x.recoveryMs !== null && x.recoveryMs <= 30_000));
  });
});

describe('croft lab chaos catches a deliberately broken build (chaos-ack-early: acknowledged before the peer\'s ack)', { timeout: 400_000 }, () => {
  let built: ChaosLab | undefined;
  let config: string | undefined;
  let out: string | undefined;
  afterAll(async () => {
    keepLogs(built, 'chaos-broken');
    await built?.close();
    for (const d of [config, out]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  test('the broken addon is built apart, the release one has no broken feature, the campaign finds a violation', async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-chaos-addon-'));
    const t0 = Date.now();
    // The same target dir as the release build (its dependencies are built), another output dir:
    // native/ (the release addon) is never the broken one.
    const b = await run(['npx', 'napi', 'build', '--platform', '--release', '--no-js', '--manifest-path', 'crates/croft-napi/Cargo.toml',
      '--features', 'chaos-ack-early', '--output-dir', out], { cwd: repoRoot, timeoutMs: 600_000 });
    assert.equal(b.code, 0, b.stderr);
    const addon = path.join(out, fs.readdirSync(out).find((f) => f.endsWith('.node'))!);
    console.log(`# broken addon (chaos-ack-early) built in ${Date.now() - t0} ms: ${addon}`);
    const features = async (file: string) => JSON.parse((await run([process.execPath, '-e',
      `console.log(JSON.stringify(require(${JSON.stringify(file)}).chaosFeatures()))`], { timeoutMs: 30_000 })).stdout) as string[];
    assert.deepEqual(await features(addon), ['chaos-ack-early']);
    const release = fs.readdirSync(path.join(repoRoot, 'native')).filter((f) => f.endsWith('.node'));
    assert.ok(release.length > 0);
    for (const f of release) assert.deepEqual(await features(path.join(repoRoot, 'native', f)), [], `native/${f} is a release build`);

    // A mirror with no application: the campaign's writer is its load.
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-chaos-broken-'));
    fs.mkdirSync(path.join(config, 'modules'));
    fs.writeFileSync(path.join(config, 'modules', 'data.yaml'), 'kind: mirror\nnodes: [n1, n2]\nvip: 10.77.0.70\ndirs: [/srv/croft/chaos-data]\nmode: every-change\nwitness: { type: none }\n');
    built = await chaosLab({
      name: `cb${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500, witness: 'redis', ttlMs: 1000,
      daemonCommand: (n) => ['env', `CROFT_LAB_NATIVE_ADDON=${addon}`, ...daemonCommand(n)],
    });
    const seed = SEED + 1;
    const r = await runChaos({
      // The faults that stop the peer's acks without killing the primary: the broken build then
      // acknowledges what the peer never gets.
      lab: built.lab, rounds: 20, seed, kinds: ['partition', 'pause', 'cut'], holdMs: [800, 1400], settleMs: 200, convergeMs: 20_000,
      witnessPid: built.witnessPid, log: (l) => console.log(l.startsWith('round ') ? `# ${l}` : l),
    });
    assert.ok(r.violation, `the broken build went through ${r.rounds.length} rounds unnoticed`);
    console.log(`# the broken build caught in round ${r.violation.round} of 20 (seed ${seed}): ${r.violation.messages[0]}`);
    // The daemons said what they run.
    assert.match(fs.readFileSync(path.join(built.lab.stateDir, 'nodes', 'n1', 'daemon.log'), 'utf8'), /deliberately broken test build \(chaos-ack-early\)/);
  });
});
