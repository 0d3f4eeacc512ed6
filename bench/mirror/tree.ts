// Reintegration benchmark, the node side (bench/mirror/run.ts runs it in the lab):
//   tree.js build  --dir D <spec>              builds the tree (identical on every node)
//   tree.js change --dir D <spec>              applies the change directly (the copy rsync sends)
//   tree.js croft  --dir D --log L <spec> --peer H --port P --key K [--full]
//       trusts an empty dirty log (the copies are equal by construction), mounts the mirror alone
//       over D, applies the change through it, then reintegrates into the replica at H:P and
//       prints the reintegration's figures as one JSON line.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { MirrorMount } from '../../src/native/mirror.js';
import { buildTree, changeTree, type TreeSpec } from './trees.js';

const ZONE_BYTES = 64 * 1024;

const { positionals, values: opt } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string' },
    log: { type: 'string' },
    kind: { type: 'string', default: 'big' },
    'total-mib': { type: 'string', default: '1024' },
    'file-mib': { type: 'string', default: '16' },
    files: { type: 'string', default: '1000000' },
    'changed-fraction': { type: 'string', default: '0.01' },
    'changed-files': { type: 'string', default: '1000' },
    peer: { type: 'string' },
    port: { type: 'string' },
    key: { type: 'string' },
    full: { type: 'boolean', default: false },
  },
});

const spec: TreeSpec = {
  kind: opt.kind === 'small' ? 'small' : 'big',
  totalMiB: Number(opt['total-mib']),
  fileMiB: Number(opt['file-mib']),
  files: Number(opt.files),
  changedFraction: Number(opt['changed-fraction']),
  changedFiles: Number(opt['changed-files']),
};

async function croft(dir: string, logDir: string): Promise<void> {
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });
  if (!opt.full) {
    const log = await MirrorMount.openDirtyLog(logDir, ZONE_BYTES);
    await log.clearDirty();
    log.close();
  }
  const mount = await MirrorMount.mount({ dir, failMode: 'alone', dirtyLog: { dir: logDir, zoneBytes: ZONE_BYTES } });
  try {
    const changedBytes = changeTree(dir, spec);
    const dirtyBytes = mount.dirtyBytes();
    const peer = { host: String(opt.peer), port: Number(opt.port), key: Buffer.from(String(opt.key), 'hex'), ackLevel: 'received' as const };
    const t = performance.now();
    const st = await mount.reintegrate({ peer, full: opt.full });
    const seconds = (performance.now() - t) / 1000;
    process.stdout.write(`${JSON.stringify({ changedBytes, dirtyBytes, seconds, bytesSent: st.bytesSent, bytesCopied: st.bytesCopied, passes: st.passes, full: st.full })}\n`);
  } finally {
    await mount.unmount();
  }
}

async function main(): Promise<void> {
  const dir = String(opt.dir);
  switch (positionals[0]) {
    case 'build':
      buildTree(dir, spec);
      break;
    case 'change':
      process.stdout.write(`${JSON.stringify({ changedBytes: changeTree(dir, spec) })}\n`);
      break;
    case 'croft':
      await croft(dir, String(opt.log));
      break;
    default:
      throw new Error('usage: tree.js build|change|croft --dir D ...');
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
