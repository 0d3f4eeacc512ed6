// Holds croft's mirror mounted over a directory for bench/mirror/run.ts (pgbench runs PostgreSQL on
// it meanwhile): mounts with the peer given, prints "mounted", unmounts when stdin closes.
// Prints the link counters on exit, so the bench can check that no change went alone. With a
// dirty log folder, the mount keeps its durable dirty log there (as the daemon's mounts do).
import { MirrorMount } from '../../src/native/mirror.js';

const [dir, host, port, keyHex, ack, mode = 'every-change', dirtyLog] = process.argv.slice(2);
if (!dir || !host || !port || !keyHex || (ack !== 'received' && ack !== 'durable') || (mode !== 'every-change' && mode !== 'on-sync')) {
  console.error('usage: hold.js <dir> <peer host> <peer port> <key hex> received|durable [every-change|on-sync [dirty log dir]]');
  process.exit(2);
}
const mount = await MirrorMount.mount({
  dir, peer: { host, port: Number(port), key: Buffer.from(keyHex, 'hex'), ackLevel: ack }, failMode: 'alone', mode,
  ...(dirtyLog ? { dirtyLog: { dir: dirtyLog, zoneBytes: 262_144 } } : {}),
});
process.stdout.write('mounted\n');
let done = false;
const end = async () => {
  if (done) return;
  done = true;
  const l = mount.status().link;
  process.stdout.write(`${JSON.stringify({ connected: l.connected, aloneOps: l.aloneOps, bytesSent: l.bytesSent })}\n`);
  await mount.unmount();
  process.exit(0);
};
process.stdin.on('end', () => void end());
process.stdin.resume();
