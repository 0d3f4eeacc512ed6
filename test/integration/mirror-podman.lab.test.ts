// modules/podman-mirror in a real 2-node lab (test/helpers/mirror-app-suite.ts): a whole container
// (Podman, rootful, the module's demo image built offline from busybox-static by its build-image)
// whose volume is the replicated directory. The containerised service appends each record number
// it receives to /data/records, fdatasyncs, and only then echoes it; a client in the lab's client
// namespace sends numbers through the VIP (busybox nc) and counts an echoed number as acknowledged.
// Two kills of the PRIM (lab kill: the node's PID namespace ends, with its conmon and container),
// alternating nodes: every acknowledged record on the survivor, the container running there (and
// nothing of it left on the killed node), reintegration from the dirty log copying only what
// changed (the volume also holds an 8 MiB file written before the kills), `croft mirror verify`
// identical. Then `croft swap` moves the container with its data, and a crash of the container
// alone (its pid 1 SIGKILLed) is seen by the module's checker and restarted by croft.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Lab } from '../../top/lab/index.js';
import { pidNsFile } from '../../top/lab/pidns.js';
import { nsInode } from '../../top/lab/procs.js';
import { sleep } from '../helpers/cluster.js';
import { mirrorAppSuite } from '../helpers/mirror-app-suite.js';
import { hostPids, pidNs, swapAndCheckerRestart } from '../helpers/mirror-whole.js';
import { repoRoot } from '../helpers/paths.js';

const MODULE = 'podman-mirror';
const VIP = '10.77.0.64'; // modules/podman-mirror/module.yaml
const DIR = '/var/lib/croft-apps/podman'; // its dirs[0], the container's /data
const NAME = `croft-${MODULE}`; // lib.sh: the container's name
const LIB = path.join(repoRoot, 'modules', 'lib', 'croft.sh');
const BALLAST_MIB = 8;

const podman = (lab: Lab, node: string, args: string[]) => lab.exec(node, ['sh', '-c',
  `. /etc/croft/modules/${MODULE}/lib.sh && pm "$@"`, 'podman', ...args], { env: { CROFT_LIB: LIB, CROFT_MODULE: MODULE }, timeoutMs: 30_000 });

const answers = async (lab: Lab) => (await lab.exec('client', ['bash', '-c', `exec 3<>/dev/tcp/${VIP}/7777`], { timeoutMs: 5000 })).code === 0;

const rowsOn = async (lab: Lab, node: string) => {
  const r = await lab.exec(node, ['cat', `${DIR}/records`], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, `records on ${node}: ${r.stderr}`);
  const complete = r.stdout.endsWith('\n') ? r.stdout : r.stdout.slice(0, r.stdout.lastIndexOf('\n') + 1);
  return complete.split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
};

mirrorAppSuite({
  module: MODULE,
  vip: VIP,
  tag: 'pd',
  kills: 2,
  client: { argv: ['busybox', 'nc', VIP, '7777'], statement: (n) => `${n}\n` },
  answers,
  // n2 gets the image by hand, as an administrator installs it; n1 builds it at its first
  // start_prim (IMAGE_BUILD), as a node that lacks it does.
  setup: async (lab) => {
    const t0 = Date.now();
    const r = await lab.exec('n2', [`/etc/croft/modules/${MODULE}/build-image`], { env: { CROFT_LIB: LIB, CROFT_MODULE: MODULE }, timeoutMs: 60_000 });
    assert.equal(r.code, 0, `build-image on n2: ${r.stdout}${r.stderr}`);
    console.log(`# ${MODULE}: build-image on n2 (busybox-static root, podman import, offline) in ${Date.now() - t0} ms`);
  },
  // The volume also holds a larger file, written (and synced) on the PRIM before the kills: a
  // reintegration that copied more than the records' zones would show.
  createTable: async (lab) => {
    const r = await lab.exec('n1', ['dd', 'if=/dev/urandom', `of=${DIR}/ballast`, 'bs=1M', `count=${BALLAST_MIB}`, 'conv=fsync', 'status=none'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `ballast: ${r.stderr}`);
    // The PRIM's activity log keeps acknowledged zones up to 5 s (cleared every 5 s once acked, as
    // in mirror-reintegration.lab): let the ballast's leave it, so that a reintegration that still
    // copies it would be one copying what did not change.
    await sleep(11_000);
  },
  maxReintegrationBytes: 1 << 20,
  rowsOn,
  afterFailover: async (lab, survivor, killed) => {
    const ps = await podman(lab, survivor, ['ps', '--filter', `name=${NAME}`, '--format', '{{.Names}} {{.Status}}']);
    assert.equal(ps.code, 0, `podman ps on ${survivor}: ${ps.stderr}`);
    assert.match(ps.stdout, new RegExp(`^${NAME} Up`, 'm'), `the container runs on ${survivor}`);
    // Exactly one conmon of the module on the machine, in the survivor's PID namespace: the killed
    // node's container ended with its node.
    const survivorNs = nsInode(pidNsFile(lab.stateDir, survivor));
    const found = hostPids('/conmon', NAME);
    assert.equal(found.length, 1, `one conmon of ${NAME} (found ${found.join(', ')}; ${killed} was killed)`);
    assert.equal(pidNs(found[0]!), survivorNs, `the conmon of ${NAME} is ${survivor}'s`);
  },
  more: swapAndCheckerRestart({
    module: MODULE,
    answers,
    rowsOn,
    hostPids: () => hostPids('/conmon', NAME),
    // container.env (sourced by lib.sh) in the lab's shared config: start_prim sleeps first.
    slowStart: (lab, seconds) => {
      const env = path.join(lab.configDir, 'modules', MODULE, 'container.env');
      if (seconds === null) fs.rmSync(env, { force: true });
      else fs.writeFileSync(env, `case $0 in */start_prim) sleep ${seconds} ;; esac\n`);
    },
    crash: async (lab, node) => {
      const pid = await podman(lab, node, ['inspect', '--format', '{{.State.Pid}}', NAME]);
      assert.match(pid.stdout.trim(), /^[1-9]\d*$/, `the container's pid on ${node}: ${pid.stdout}${pid.stderr}`);
      assert.equal((await lab.exec(node, ['kill', '-KILL', pid.stdout.trim()])).code, 0);
    },
  }),
  serverLog: `/var/log/croft/${MODULE}.log`,
});
