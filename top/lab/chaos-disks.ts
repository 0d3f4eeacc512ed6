// The disks of the disk-full fault of `croft lab chaos` (chaos-faults.ts). A lab's nodes keep their
// folders in the lab's state folder under /run, on a filesystem the host and every node share:
// filling it would fill everything. So a lab built for a campaign (chaos-setup.ts) gives each mirror node filesystems of
// its own, before its daemon starts, inside the node's mount namespace only:
// - one per replicated directory of each mirror module the node carries (the mirror's data);
// - one for <stateDir>/mirror, where every mirror module keeps its dirty log and its records.
// Each is a tmpfs (memory is used only for what is written: a full data disk holds up to DATA_SIZE
// of it for the hold time) mounted at a folder of its own under
// the node's /run/croft, filled with what the directory held, then bound over the directory. The
// fault writes a ballast into that folder — beside the mirror's FUSE mount, not through it — until
// the filesystem is full, and removes it at heal. The mount namespace outlives kills and crashes,
// and `lab down` drops it with the tmpfs.
import path from 'node:path';
import { CroftError } from '../../src/errors.js';
import type { ModuleConfig } from '../../src/config/types.js';
import type { Lab } from './index.js';

/** A disk: the folder (inside the node) where it is mounted, and the directory it is bound over. */
export interface Disk {
  folder: string;
  dir: string;
}

/** Per node: its disks, by what they hold. */
export interface NodeDisks {
  /** The data of its mirror modules' directories. */
  data: Disk[];
  /** <stateDir>/mirror. */
  state: Disk;
}

const DISKS = '/run/croft/chaos-disks';
/** Room for PostgreSQL's data and WAL (max_wal_size 1 GB by default) under a long campaign. */
const DATA_SIZE = '2g';
const STATE_SIZE = '256m';
const BALLAST = 'croft-chaos-ballast';

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function sh(lab: Lab, node: string, script: string, what: string): Promise<string> {
  const r = await lab.exec(node, ['sh', '-ec', script], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new CroftError('CROFT_ERR_LAB', `${node}: ${what} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}

/** A tmpfs at `hidden` holding what `target` held (owner and mode too), bound over `target`. */
function diskScript(target: string, hidden: string, size: string): string {
  return [
    `mkdir -p ${shq(target)} ${shq(hidden)}`,
    `mount -t tmpfs -o size=${size},mode=0755 croft-chaos-disk ${shq(hidden)}`,
    `cp -a ${shq(`${target}/.`)} ${shq(`${hidden}/`)}`,
    `chown --reference=${shq(target)} ${shq(hidden)}`,
    `chmod --reference=${shq(target)} ${shq(hidden)}`,
    `mount --bind ${shq(hidden)} ${shq(target)}`,
  ].join('\n');
}

/** Gives every node of a mirror module its own disks (before the daemons start). */
export async function createChaosDisks(lab: Lab, mirrors: readonly ModuleConfig[], stateDir: string): Promise<Map<string, NodeDisks>> {
  const out = new Map<string, NodeDisks>();
  for (const node of lab.nodes) {
    const dirs = [...new Set(mirrors.filter((m) => m.nodes.includes(node)).flatMap((m) => m.mirror?.dirs ?? []))];
    if (dirs.length === 0) continue;
    const disks: NodeDisks = {
      data: dirs.map((dir, i) => ({ folder: `${DISKS}/data${i}`, dir })),
      state: { folder: `${DISKS}/state`, dir: path.join(stateDir, 'mirror') },
    };
    const script = [
      ...disks.data.map((d) => diskScript(d.dir, d.folder, DATA_SIZE)),
      diskScript(disks.state.dir, disks.state.folder, STATE_SIZE),
    ].join('\n');
    await sh(lab, node, script, 'creating the disks of the disk-full fault');
    out.set(node, disks);
  }
  return out;
}

/**
 * Fills a disk: a ballast as large as the room left. Returns it. Refuses (an error, not a quiet
 * round) when the disk is no longer bound over its directory.
 */
export async function fillDisk(lab: Lab, node: string, disk: Disk): Promise<string> {
  const { folder, dir } = disk;
  const ballast = `${folder}/${BALLAST}`;
  const bound = await sh(lab, node, `awk -v d=${shq(dir)} '$5 == d && / - tmpfs croft-chaos-disk /' /proc/self/mountinfo | wc -l`, `looking for the disk under ${dir}`);
  if (Number(bound.trim()) < 1) throw new CroftError('CROFT_ERR_LAB', `${node}: the disk of the disk-full fault is no longer mounted under ${dir} (something unmounted it)`);
  // fallocate takes the room in one call; then small writes until ENOSPC take what rounding left.
  await sh(lab, node, [
    `avail=$(df -B1 --output=avail ${shq(folder)} | tail -n 1 | tr -d ' ')`,
    `fallocate -l "$avail" ${shq(ballast)} 2>/dev/null || true`,
    `dd if=/dev/zero bs=4096 count=1000000 oflag=append conv=notrunc of=${shq(ballast)} 2>/dev/null || true`,
    `[ "$(df -B1 --output=avail ${shq(folder)} | tail -n 1 | tr -d ' ')" -lt 8192 ]`,
  ].join('\n'), `filling ${folder}`);
  return ballast;
}

export async function emptyDisk(lab: Lab, node: string, ballast: string): Promise<void> {
  await sh(lab, node, `rm -f ${shq(ballast)}`, `removing ${ballast}`);
}
