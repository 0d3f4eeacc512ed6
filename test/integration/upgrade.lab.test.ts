// Rolling upgrade (issue 12, part 5) in a real 2-node lab: n2 is "a node of the previous release"
// (this build with its protocol lowered to PROTOCOL_MIN by the test-only CROFT_TEST_PROTOCOL_VERSION,
// set on n2's daemon alone), n1 is the new release. They form one cluster, `croft status` shows each
// node's version and "mixed versions", and the mirror replicates both ways: new PRIM to old SECOND
// (the handshake falls back to the old version), then after a swap old PRIM to new SECOND.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab, NODE_CONFIG_PATH } from '../../top/lab/index.js';
import { croftJs } from '../../src/paths.js';
import { PROTOCOL_MIN, PROTOCOL_VERSION, TEST_PROTOCOL_ENV, packageVersion } from '../../src/protocol.js';
import { daemonLog, nodeStatus, seesMembers, sleep, waitFor } from '../helpers/cluster.js';
import { assertSequence, cat, lines, waitStates as waitStatesOf, writerPid as writerPidOf } from '../helpers/mirror-lab.js';
import { fixtures } from '../helpers/paths.js';

const MODULE = 'mirror-app';
const FILE = '/srv/croft/mirror-test/data/lines.txt';
const waitStates = (lab: Lab, want: Record<string, string>, timeoutMs = 30_000) => waitStatesOf(lab, want, timeoutMs, MODULE);
const writerPid = (lab: Lab, node: string) => writerPidOf(lab, node, 'mirror-app');

/** Freezes the writer on `node`, checks both files are the same sequence, lets it go on. */
async function sameOnBoth(lab: Lab, node: string): Promise<number> {
  const pid = (await writerPid(lab, node))!;
  await lab.exec(node, ['kill', '-STOP', String(pid)]);
  try {
    await sleep(100);
    const a = await cat(lab, 'n1', FILE);
    assert.equal(await cat(lab, 'n2', FILE), a, 'both nodes hold the same file');
    assertSequence(lines(a), FILE);
    return lines(a).length;
  } finally {
    await lab.exec(node, ['kill', '-CONT', String(pid)]);
  }
}

const daemon = (node: string) => [process.execPath, croftJs, 'daemon', '--config', NODE_CONFIG_PATH, '--node', node];

describe('rolling upgrade: a node of the previous protocol and one of the new form a cluster and mirror', { timeout: 300_000 }, () => {
  let lab: Lab;
  let config: string;
  beforeAll(async () => {
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-upgrade-'));
    fs.cpSync(path.join(fixtures, 'mirror-app'), path.join(config, 'modules', MODULE), { recursive: true });
    lab = await Lab.up({
      name: `up${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500,
      daemonCommand: (node) => (node === 'n2' ? ['env', `${TEST_PROTOCOL_ENV}=${PROTOCOL_MIN}`, ...daemon(node)] : daemon(node)),
    });
  });
  afterAll(async () => {
    if (lab) for (const n of ['n1', 'n2']) fs.cpSync(path.join(lab.stateDir, 'nodes', n, 'daemon.log'), path.join(os.tmpdir(), `croft-upgrade-lab-${n}.log`));
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('one cluster; croft status shows each node\'s version and "mixed versions"', async () => {
    assert.ok(PROTOCOL_MIN < PROTOCOL_VERSION);
    await waitFor('n1 and n2 see each other', async () => (await seesMembers(lab, 'n1', ['n1', 'n2'])) && seesMembers(lab, 'n2', ['n1', 'n2']), 15_000);
    const st = (await nodeStatus(lab, 'n1'))!;
    const n1 = st.nodes.find((n) => n.name === 'n1')!;
    const n2 = st.nodes.find((n) => n.name === 'n2')!;
    assert.deepEqual([n1.package, n1.protocol], [packageVersion(), PROTOCOL_VERSION]);
    // Protocol 2 announces no package version (as the builds before did not).
    assert.deepEqual([n2.package, n2.protocol, n2.configDiffers], [null, PROTOCOL_MIN, null]);
    assert.equal(st.mixedVersions, true);
    const text = await lab.exec('n1', ['croft', 'status']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^n1 \\(this node\\)\\s+UP .*${packageVersion().replace(/\./g, '\\.')} p${PROTOCOL_VERSION}\\s+reference$`, 'm'));
    assert.match(text.stdout, new RegExp(`^n2\\s+UP .* p${PROTOCOL_MIN}\\s+-$`, 'm'));
    assert.match(text.stdout, /^mixed versions: /m);
    console.log(`# n1 (protocol ${PROTOCOL_VERSION}) and n2 (protocol ${PROTOCOL_MIN}) in one view; croft status:\n${text.stdout.split('\n').map((l) => `#   ${l}`).join('\n')}`);
    // The lowered node said so at start, loudly.
    assert.ok(daemonLog(lab, 'n2').some((l) => l.event === 'protocol_lowered'), 'n2 warned that its protocol is lowered');
    // No heartbeat refused for its version on either side.
    assert.ok(!daemonLog(lab, 'n1').some((l) => l.event === 'peer_version_refused'));
    assert.ok(!daemonLog(lab, 'n2').some((l) => l.event === 'peer_version_refused'));
  });

  test('new PRIM on n1 replicates to the old SECOND on n2; after a swap the old PRIM replicates to the new SECOND', async () => {
    await waitStates(lab, { n1: 'WAIT', n2: 'WAIT' });
    const r = await lab.exec('n1', ['croft', 'prim', MODULE]);
    assert.equal(r.code, 0, r.stderr);
    await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' });
    await waitFor('writer on n1', async () => (await writerPid(lab, 'n1')) !== null, 10_000);
    await sleep(1000);
    const first = await sameOnBoth(lab, 'n1');
    assert.ok(first > 10, `the writer wrote on n1 (${first} lines)`);
    const v = await lab.exec('n1', ['croft', 'mirror', 'verify', MODULE]);
    assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /identical/);
    console.log(`# new PRIM n1 -> old SECOND n2: ${first} lines, the same on both; verify: identical`);

    const s = await lab.exec('n1', ['croft', 'swap', MODULE]);
    assert.equal(s.code, 0, s.stderr);
    await waitStates(lab, { n1: 'SECOND', n2: 'PRIM' });
    await waitFor('writer on n2', async () => (await writerPid(lab, 'n2')) !== null, 10_000);
    await sleep(1000);
    const second = await sameOnBoth(lab, 'n2');
    assert.ok(second > first, `the writer went on on n2 (${second} lines)`);
    const v2 = await lab.exec('n2', ['croft', 'mirror', 'verify', MODULE]);
    assert.equal(v2.code, 0, `verify: ${v2.stdout}${v2.stderr}`);
    console.log(`# after swap, old PRIM n2 -> new SECOND n1: ${second} lines, the same on both`);
  });

  test('the procedure\'s last step: back to n1, the old SECOND n2 upgraded (clean stop, new build): SECOND again, no mixed versions', async () => {
    const s = await lab.exec('n2', ['croft', 'swap', MODULE]);
    assert.equal(s.code, 0, s.stderr);
    await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' });
    // systemctl restart: a clean stop (SIGTERM: modules stopped, then the daemon exits), then the new build.
    const pid = (await lab.status()).nodes.find((n) => n.name === 'n2')?.daemonPid;
    assert.ok(pid, 'n2 daemon pid');
    process.kill(pid, 'SIGTERM');
    await waitFor('n2 daemon stopped', async () => (await lab.status()).nodes.find((n) => n.name === 'n2')?.daemon !== 'alive', 30_000, 100);
    await lab.start('n2', daemon('n2'));
    await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' }, 60_000);
    await waitFor('n1 sees n2 at protocol 3', async () => (await nodeStatus(lab, 'n1'))?.nodes.find((n) => n.name === 'n2')?.protocol === PROTOCOL_VERSION, 10_000);
    const st = (await nodeStatus(lab, 'n1'))!;
    assert.equal(st.mixedVersions, false);
    assert.deepEqual(st.configMismatch, []);
    assert.deepEqual(st.nodes.find((n) => n.name === 'n2')?.configDiffers, []);
    await sleep(500);
    const n = await sameOnBoth(lab, 'n1');
    console.log(`# n2 upgraded (clean stop, new build): SECOND again, ${n} lines the same on both, no mixed versions`);
  });
});
