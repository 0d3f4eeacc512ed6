// Many clients for wrk. wrk binds no source address, so all its connections leave the client
// namespace from 10.77.0.254: with croft's default `balance: source-ip` they would all hash to one
// bucket, one node, and (a) would measure one node. An nft rule in the client namespace rewrites the
// source of each new connection to the next of SOURCES addresses of the clients' subnet (numgen inc:
// round robin; the kernel's NAT range alone would not do, it picks the address by a hash of the
// (source, destination) pair, the same for every connection). So every wrk connection is another
// client, as on the internet. Every scenario runs through the same rule, so its cost is the same
// in (a), (b) and (c). Replies are un-NATed by conntrack in the client namespace.
import type { Lab } from '../../top/lab/index.js';
import { clientAddress } from '../../top/lab/names.js';
import { runOk } from '../../top/lab/run.js';

const TABLE = 'croft_bench_snat';
export const SOURCES = 1000;

export function renderSnat(destinations: string[], port: number, sources = SOURCES): string {
  const map = Array.from({ length: sources }, (_, i) => `${i} : ${clientAddress(i)}`).join(', ');
  return [
    `table ip ${TABLE} {`,
    '  chain post {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip daddr { ${destinations.join(', ')} } tcp dport ${port} snat to numgen inc mod ${sources} map { ${map} }`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function addSnat(lab: Lab, destinations: string[], port: number): Promise<void> {
  await runOk(lab.enterArgv('client', ['nft', '-f', '-']), { input: renderSnat(destinations, port) });
}

export async function removeSnat(lab: Lab): Promise<void> {
  await runOk(lab.enterArgv('client', ['nft', 'delete', 'table', 'ip', TABLE]));
}

/**
 * Forgets the finished connections of the client and of every node between runs. conntrack keeps a
 * closed connection for 2 minutes (TIME_WAIT) and its table is limited per namespace
 * (nf_conntrack_max, 262144 here): one 13 s run with a connection per request makes up to 170,000
 * entries, and the next run would meet "table full, dropping packet". Run with no traffic only.
 */
export async function flushConntrack(lab: Lab): Promise<void> {
  for (const target of ['client', ...lab.nodes]) await lab.exec(target, ['conntrack', '-F']);
}
