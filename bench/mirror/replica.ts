// The peer's side for bench/mirror/run.ts: a croft mirror replica over a directory, listening on
// the lab node's address, until stdin closes (the bench ends it by closing the pipe or by pid).
// Prints "ready <port>" once listening.
import { MirrorReplica } from '../../src/native/mirror.js';

const [dir, host, port, keyHex] = process.argv.slice(2);
if (!dir || !host || !port || !keyHex) {
  console.error('usage: replica.js <dir> <host> <port> <key hex>');
  process.exit(2);
}
const replica = MirrorReplica.start({ dir, host, port: Number(port), key: Buffer.from(keyHex, 'hex') });
process.stdout.write(`ready ${replica.port}\n`);
const stop = () => {
  replica.stop();
  process.exit(0);
};
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.on('SIGTERM', stop);
process.stdin.resume();
