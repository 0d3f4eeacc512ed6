// modules/kvm-mirror in a real 2-node lab (test/helpers/mirror-app-suite.ts): a whole QEMU virtual
// machine (the module's demo guest, built offline on each node by build-guest: Debian's kernel and
// an initramfs of busybox-static; KVM where it works, TCG otherwise) whose raw disk image is in the
// replicated directory. The guest writes each record number it receives as sector n of its disk,
// flushes it (QEMU: fdatasync of the image, through the mirror), and only then echoes n; a client
// in the lab's client namespace sends numbers through the VIP (busybox nc; QEMU forwards the node's
// port to the guest) and counts an echoed number as synced. Two kills of the PRIM (lab kill: the
// node's PID namespace ends, QEMU with it), alternating nodes: the survivor boots the VM from the
// replicated image and every record synced before the kill is on its disk; the VM runs there only;
// reintegration copies only the changed zones of the 64 MiB image; `croft mirror verify` identical.
// Then `croft swap` moves the VM with its disk, and a crash of QEMU alone (SIGKILL) is seen by the
// module's checker and restarted by croft.
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Lab } from '../../top/lab/index.js';
import { pidNsFile } from '../../top/lab/pidns.js';
import { nsInode } from '../../top/lab/procs.js';
import { mirrorAppSuite } from '../helpers/mirror-app-suite.js';
import { hostPids, pidNs, swapAndCheckerRestart } from '../helpers/mirror-whole.js';
import { repoRoot } from '../helpers/paths.js';

const MODULE = 'kvm-mirror';
const VIP = '10.77.0.65'; // modules/kvm-mirror/module.yaml
const DISK = '/var/lib/croft-apps/kvm/disk.raw'; // lib.sh: DISK in dirs[0]
const VM_NAME = `croft-${MODULE}`; // lib.sh: QEMU's -name
const RUN_DIR = `/run/croft/${MODULE}`;
const LIB = path.join(repoRoot, 'modules', 'lib', 'croft.sh');

async function accelOn(lab: Lab, node: string): Promise<string> {
  const r = await lab.exec(node, ['cat', `${RUN_DIR}/accel`]);
  assert.equal(r.code, 0, `${RUN_DIR}/accel on ${node}: ${r.stderr}`);
  return r.stdout.trim();
}

// Sector n of the image holds "n\n" (zero-padded) once record n was written: the records on the disk.
const READ_RECORDS = `
import sys
with open(sys.argv[1], 'rb') as f:
    data = f.read()
out = []
for i in range(1, len(data) // 512):
    head = data[i * 512:i * 512 + 16].split(b'\\n')[0]
    if head and head == str(i).encode():
        out.append(i)
print(' '.join(map(str, out)))
`;

const answers = async (lab: Lab) => (await lab.exec('client', ['bash', '-c',
  `exec 3<>/dev/tcp/${VIP}/7778 && echo ping >&3 && read -r -t 3 l <&3 && [ "$l" = pong ]`], { timeoutMs: 5000 })).code === 0;

const rowsOn = async (lab: Lab, node: string) => {
  const r = await lab.exec(node, ['python3', '-c', READ_RECORDS, DISK], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, `records on ${node}: ${r.stderr}`);
  return r.stdout.trim().split(' ').filter(Boolean).map(Number);
};

mirrorAppSuite({
  module: MODULE,
  vip: VIP,
  tag: 'kv',
  kills: 2,
  client: { argv: ['busybox', 'nc', VIP, '7778'], statement: (n) => `${n}\n` },
  answers,
  // n2 gets its guest's initramfs by hand, as an administrator installs it; n1 builds its own at
  // its first start_prim, as a node that lacks it does.
  setup: async (lab) => {
    const t0 = Date.now();
    const r = await lab.exec('n2', [`/etc/croft/modules/${MODULE}/build-guest`], { env: { CROFT_LIB: LIB, CROFT_MODULE: MODULE }, timeoutMs: 60_000 });
    assert.equal(r.code, 0, `build-guest on n2: ${r.stdout}${r.stderr}`);
    console.log(`# ${MODULE}: build-guest on n2 (initramfs of busybox-static + the kernel's virtio modules, offline) in ${Date.now() - t0} ms`);
  },
  createTable: async (lab) => {
    console.log(`# ${MODULE}: n1 booted the VM with ${await accelOn(lab, 'n1')}`);
  },
  // The image is 64 MiB; the records of a round span well under 4 MiB of it.
  maxReintegrationBytes: 4 << 20,
  // A TCG boot of the guest takes seconds (more when the machine is busy).
  maxFailoverMs: 45_000,
  rowsOn,
  afterFailover: async (lab, survivor, killed) => {
    const survivorNs = nsInode(pidNsFile(lab.stateDir, survivor));
    const found = hostPids('/qemu-system-x86_64', VM_NAME);
    assert.equal(found.length, 1, `one QEMU of ${VM_NAME} (found ${found.join(', ')}; ${killed} was killed)`);
    assert.equal(pidNs(found[0]!), survivorNs, `the QEMU of ${VM_NAME} is ${survivor}'s`);
    const console_ = await lab.exec(survivor, ['cat', `${RUN_DIR}/console.log`]);
    assert.match(console_.stdout, /kvm-mirror guest: up/, `the guest booted on ${survivor}`);
    console.log(`# ${MODULE}: ${survivor} booted the VM from the replicated image with ${await accelOn(lab, survivor)}`);
  },
  more: swapAndCheckerRestart({
    module: MODULE,
    answers,
    rowsOn,
    hostPids: () => hostPids('/qemu-system-x86_64', VM_NAME),
    crash: async (lab, node) => {
      const r = await lab.exec(node, ['sh', '-c', `kill -KILL "$(cat ${RUN_DIR}/qemu.pid)"`]);
      assert.equal(r.code, 0, `kill of QEMU on ${node}: ${r.stderr}`);
    },
  }),
  serverLog: `/var/log/croft/${MODULE}.log`,
});
