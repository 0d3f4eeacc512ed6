// One persistent mount namespace per node, so every node has the same paths with different
// contents. unshare(1) binds the new namespace to a file, which must sit on a private mount (else
// the nsfs bind would propagate and pin the namespace in a loop): hence the private bind of mnt/.
import fs from 'node:fs';
import path from 'node:path';
import { runOk } from './run.js';
import { netnsPath } from './names.js';

/**
 * Standard paths every node has, each bound to a private folder of the node. The config folder is
 * shared (the lab's config dir). Beside these, every directory the lab's config names (a mirror's
 * dirs, state_dir...) gets a private folder too: private-paths.ts.
 */
export const NODE_BIND_PATHS: readonly { target: string; dir: string }[] = [
  { target: '/var/lib/croft', dir: 'var-lib-croft' },
  { target: '/var/log/croft', dir: 'var-log-croft' },
  { target: '/run/croft', dir: 'run-croft' },
  { target: '/srv/croft', dir: 'srv-croft' },
  // The servers of the farm modules (Debian's nginx and apache2): their logs, state, run and lock
  // folders, so that each node's server writes its own and the host's are never touched (the binds
  // live in the node's private mount namespace only). /var/run and /var/lock are links to these.
  { target: '/var/log/nginx', dir: 'var-log-nginx' },
  { target: '/var/lib/nginx', dir: 'var-lib-nginx' },
  { target: '/var/log/apache2', dir: 'var-log-apache2' },
  { target: '/run/apache2', dir: 'run-apache2' },
  { target: '/run/lock/apache2', dir: 'run-lock-apache2' },
  // The mirror modules' replicated directories (modules/*-mirror: dirs under /var/lib/croft-apps):
  // each node has its own copy, as two machines would. Their servers' config, sockets and logs are
  // under /run/croft and /var/log/croft, already private.
  { target: '/var/lib/croft-apps', dir: 'var-lib-croft-apps' },
];
/** Where the lab config dir appears inside every node. */
export const NODE_CONFIG_PATH = '/etc/croft';

export function mntDir(stateDir: string): string {
  return path.join(stateDir, 'mnt');
}
export function mountNsFile(stateDir: string, node: string): string {
  return path.join(mntDir(stateDir), node);
}
export function nodeDir(stateDir: string, node: string): string {
  return path.join(stateDir, 'nodes', node);
}

/** Bind mnt/ over itself and make it private (see the comment at the top). */
export async function preparePrivateMntDir(stateDir: string): Promise<void> {
  const dir = mntDir(stateDir);
  fs.mkdirSync(dir, { recursive: true });
  await runOk(['mount', '--bind', dir, dir]);
  await runOk(['mount', '--make-private', dir]);
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The node's private folder for a path the config names (private-paths.ts): the same tree under paths/. */
export function configPathDir(stateDir: string, node: string, target: string): string {
  return path.join(nodeDir(stateDir, node), 'paths', target.slice(1));
}

/**
 * Creates the node's mount namespace (entering its netns first, so the fresh sysfs shows the
 * node's interfaces) and binds its private folders over the standard paths and over `configPaths`
 * (the directories the config names). Returns the folders, by path.
 */
export async function createNodeMountNs(stateDir: string, node: string, ns: string, configDir: string, configPaths: readonly string[] = []): Promise<Record<string, string>> {
  const file = mountNsFile(stateDir, node);
  fs.writeFileSync(file, '');
  const dirs: Record<string, string> = {};
  // The fresh sysfs hides the host's /sys/fs/cgroup: mount the cgroup v2 hierarchy again, so that
  // the daemon runs its scripts in cgroups as on a real node (module/contain.ts); without it (no
  // cgroup2 here) the daemon uses its fallback.
  const script = ['set -e', 'mount -t sysfs sysfs /sys', 'mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true'];
  const binds = [
    ...NODE_BIND_PATHS.map((b) => ({ target: b.target, src: path.join(nodeDir(stateDir, node), b.dir) })),
    ...configPaths.map((target) => ({ target, src: configPathDir(stateDir, node, target) })),
  ];
  for (const b of binds) {
    const src = b.src;
    fs.mkdirSync(src, { recursive: true });
    dirs[b.target] = src;
    // The target is created in the host's tree (an empty folder) because a bind needs one.
    script.push(`mkdir -p ${shq(b.target)}`, `mount --bind ${shq(src)} ${shq(b.target)}`);
  }
  dirs[NODE_CONFIG_PATH] = configDir;
  script.push(`mkdir -p ${NODE_CONFIG_PATH}`, `mount --bind ${shq(configDir)} ${NODE_CONFIG_PATH}`);
  await runOk(['nsenter', `--net=${netnsPath(ns)}`, '--', 'unshare', `--mount=${file}`, '--propagation', 'private', 'sh', '-c', script.join('\n')]);
  return dirs;
}

/** Mount points (from the host's view) at or under dir, deepest first. */
export function mountsUnder(dir: string): string[] {
  const text = fs.readFileSync('/proc/self/mounts', 'utf8');
  const points = text.split('\n').filter(Boolean).map((l) => l.split(' ')[1]!.replace(/\\040/g, ' '))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points.reverse())]; // later mounts are on top; stacked ones go in later rounds
}

/** Unmounts everything at or under dir (mount-ns files, then the private bind). */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return;
    for (const p of points) {
      try {
        await runOk(['umount', p]);
      } catch {
        await runOk(['umount', '-l', p]); // busy: detach, the kernel frees it when unused
      }
    }
  }
}
