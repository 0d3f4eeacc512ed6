// croft demo: a 3-node lab running an nginx farm behind one virtual IP (modules/nginx-farm), a
// light module (modules/demo-web: a small HTTP service with an http checker) and, on n1 and n2, a
// PostgreSQL mirror (modules/postgresql-mirror) made primary on n1 with `croft prim`, with a 2-tier
// application in front of it (modules/orders-web: an order service on every node behind its own
// farm VIP, writing to the database through the mirror's VIP, waiting while the database is away);
// prints the cluster status, the farm's map, a few clients' answers, a row written through the
// database's VIP, orders through the web tier, the mirror's status, the console address and how to
// play with it (and watch both tiers) and stop it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MirrorDetail } from '../../mirror/runtime.js';
import type { ClusterStatus } from '../daemon/daemon.js';
import { CroftError } from '../../src/errors.js';
import { Lab } from '../lab/index.js';
import { nodeApiRequest } from '../lab/node-api.js';
import { repoRoot } from '../lab/paths.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { formatStatus } from './status.js';

const VIP = '10.77.0.100'; // modules/nginx-farm/module.yaml
const DB = 'db'; // the PostgreSQL mirror's module name in the demo
const DB_VIP = '10.77.0.60'; // modules/postgresql-mirror/module.yaml
// Role, password and database of modules/postgresql-mirror/lib.sh (APP_ROLE...).
const DB_URL = `postgresql://croft:croft@${DB_VIP}/croft`;
const SHOP = 'shop'; // the 2-tier application's web tier (modules/orders-web)
const SHOP_URL = 'http://10.77.0.110:8000'; // modules/orders-web: module.yaml's VIP, lib.sh's PORT

export async function demoCommand(argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['nodes', 'name']);
  rejectUnknown(args, ['nodes', 'name']);
  const name = flagString(args, 'name') ?? 'demo';
  const nodes = Number(flagString(args, 'nodes') ?? 3);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) throw new CroftError('CROFT_ERR_USAGE', '--nodes must be 1 to 16');

  // The module folder is installed as it would be on a real cluster: /etc/croft/modules/web/.
  const config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-demo-'));
  fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), path.join(config, 'modules', 'web'), { recursive: true });
  fs.cpSync(path.join(repoRoot, 'modules', 'demo-web'), path.join(config, 'modules', 'hello'), { recursive: true });
  // The mirror runs on n1 and n2 (its module.yaml says nodes: [n1, n2]): only with 2 nodes or more.
  const withDb = nodes >= 2;
  if (withDb) {
    fs.cpSync(path.join(repoRoot, 'modules', 'postgresql-mirror'), path.join(config, 'modules', DB), { recursive: true });
    fs.cpSync(path.join(repoRoot, 'modules', 'orders-web'), path.join(config, 'modules', SHOP), { recursive: true });
  }
  out.log(`croft demo: building a ${nodes}-node lab "${name}": farm "web" (nginx, VIP ${VIP}), light module "hello"`
    + `${withDb ? `, mirror "${DB}" (PostgreSQL on n1 and n2, VIP ${DB_VIP}) and in front of it farm "${SHOP}" (orders, ${SHOP_URL})` : ''}...`);
  let lab: Lab;
  try {
    lab = await Lab.up({ name, nodes, clients: 200, config, intervalMs: 200, timeoutMs: 1000 });
  } finally {
    fs.rmSync(config, { recursive: true, force: true });
  }
  const all = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const deadline = Date.now() + 30_000;
  let st: ClusterStatus | null = null;
  for (;;) {
    st = await nodeApiRequest<ClusterStatus>(lab.stateDir, 'n1', 'GET', '/api/v1/status')
      .then((r) => (r.status === 200 ? r.body : null), () => null);
    const ready = st && st.view.members.length === nodes && st.converged
      && all.every((n) => st?.modules.web?.nodes[n]?.state === 'UP' && st?.modules.hello?.nodes[n]?.state === 'UP')
      // The mirror waits (WAIT) on both nodes: no data anywhere yet, nobody elects itself.
      && (!withDb || ['n1', 'n2'].every((n) => st?.modules[DB]?.nodes[n]?.known && st.modules[DB]!.nodes[n]!.state === 'WAIT'))
      // ...and so does the web tier of the 2-tier application, for the database.
      && (!withDb || all.every((n) => st?.modules[SHOP]?.nodes[n]?.state === 'WAIT'));
    if (ready) break;
    if (Date.now() > deadline) {
      out.error(`the cluster did not come up within 30 s; see ${lab.stateDir}/nodes/*/daemon.log`);
      if (st) out.log(formatStatus(st));
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (withDb) {
    const code = (await startDb(lab, out)) || (await shopUp(lab, all, out));
    if (code !== 0) return code;
    st = (await nodeApiRequest<ClusterStatus>(lab.stateDir, 'n1', 'GET', '/api/v1/status').catch(() => null))?.body ?? st;
  }
  const api = `http://${lab.nodeAddress('n1')}:9450/`;
  out.log('');
  out.log(formatStatus(st!));
  const map = await lab.exec('n1', ['croft', 'farm', 'map', 'web']);
  out.log(`\n${map.stdout.trim()}`);
  const sample = lab.clientAddresses().slice(0, 6);
  out.log(`\nsix clients of the VIP, each from its own source address:`);
  for (const src of sample) {
    const r = await lab.exec('client', ['curl', '-s', '--max-time', '2', '--interface', src, `http://${VIP}/`]);
    out.log(`  ${src} -> ${r.code === 0 ? r.stdout.trim() : `no answer (curl exit ${r.code})`}`);
  }
  if (withDb) {
    const row = await lab.exec('client', ['psql', '-X', '-v', 'ON_ERROR_STOP=1', DB_URL, '-c', 'select id, msg, node, at from demo order by id']);
    out.log(`\nthe database through its VIP, from the client (psql ${DB_URL}):\n${row.code === 0 ? row.stdout.trimEnd() : `no answer (psql exit ${row.code}): ${row.stderr.trim()}`}`);
    out.log(`\nthe 2-tier application: three orders through ${SHOP_URL} (the farm "${SHOP}"), each committed in "${DB}" before it is acknowledged:`);
    for (const src of sample.slice(0, 3)) {
      const r = await lab.exec('client', ['curl', '-s', '--max-time', '3', '--interface', src, '-X', 'POST', `${SHOP_URL}/order`]);
      out.log(`  ${src} -> ${r.code === 0 ? r.stdout.trim() : `no answer (curl exit ${r.code})`}`);
    }
    const ms = await lab.exec('n1', ['croft', 'mirror', 'status', DB]);
    out.log(`\n${ms.code === 0 ? ms.stdout.trim() : `croft mirror status ${DB} failed: ${ms.stderr.trim()}`}`);
  }
  out.log(`
The cluster runs in network namespaces (croft-${name}-*). Try:
  croft lab exec --name ${name} n1 -- croft status          status as seen from n1
  croft lab exec --name ${name} client -- curl -s --interface 10.100.0.9 http://${VIP}/   the farm, as one client
  croft lab exec --name ${name} n1 -- croft farm who web 10.100.0.9                 who serves that client
  croft lab exec --name ${name} client -- curl -s http://${lab.nodeAddress('n2')}:8080/   the light module on n2
  croft lab kill --name ${name} n2                           SIGKILL n2's daemon and applications
  croft lab start --name ${name} n2                          start it again
  croft lab cut --name ${name} n3 / heal --name ${name} n3   cut and heal n3's links${withDb ? `
The PostgreSQL mirror "${DB}" (primary n1, its mirror n2):
  croft lab exec --name ${name} client -- psql ${DB_URL} -c 'select * from demo'
  croft lab exec --name ${name} n1 -- croft mirror status ${DB}           states, link, dirty bytes, reintegration
  croft lab kill --name ${name} n1                           n2 goes ALONE: VIP, PostgreSQL, every committed row
  croft lab start --name ${name} n1                          n1 comes back as SECOND (only what changed is copied)
  croft lab exec --name ${name} n2 -- croft swap ${DB}                    the primary goes back to n1
  croft lab exec --name ${name} n1 -- croft mirror verify ${DB}           both sides compared by checksum
The 2-tier application: the farm "${SHOP}" (an order service on n1..n${nodes}, ${SHOP_URL}) writes to "${DB}" through ${DB_VIP}.
Watch both tiers, each in its own terminal:
  croft lab exec --name ${name} client -- bash -c 'while :; do curl -s -m 2 -X POST --interface 10.100.0.$((RANDOM % 200 + 1)) ${SHOP_URL}/order || echo failed; sleep 0.2; done'
  watch -n 0.5 croft lab exec --name ${name} n${nodes} -- croft status           ${SHOP} (farm) and ${DB} (mirror) side by side
  croft lab exec --name ${name} client -- curl -s ${SHOP_URL}/orders/count
then kill the database's primary (croft lab kill --name ${name} n1): "${SHOP}" goes WAIT on every node
  while "${DB}" fails over to n2, and UP again once it answers; no acknowledged order is lost.` : ''}
Console of n1 in your browser: croft lab console --name ${name} n1   (then http://127.0.0.1:9450/)
Inside the lab, every node serves its API and console on port 9450 (${api}), with the token of
  ${lab.configDir}/cluster.yaml
Logs (JSON): ${lab.stateDir}/nodes/<node>/daemon.log
Stop it: make demo-down   (or: croft lab down --name ${name})`);
  return 0;
}

/**
 * `croft prim db` on n1, then waits until n1 is PRIM with n2 SECOND and PostgreSQL answers through
 * the VIP (the first start runs initdb on the mirror), and writes one row from the client.
 */
async function startDb(lab: Lab, out: Output): Promise<number> {
  out.log(`making n1 the primary of "${DB}" (croft prim ${DB}): initdb and PostgreSQL's start on the mirror...`);
  const prim = await lab.exec('n1', ['croft', 'prim', DB]);
  if (prim.code !== 0) {
    out.error(`croft prim ${DB} on n1 failed: ${prim.stderr.trim()}`);
    return 1;
  }
  const mirrorState = (node: string) => nodeApiRequest<MirrorDetail>(lab.stateDir, node, 'GET', `/api/v1/modules/${DB}/mirror`)
    .then((r) => (r.status === 200 ? r.body.state : null), () => null);
  const deadline = Date.now() + 90_000; // initdb and the first start: seconds here, bounded anyway
  for (;;) {
    const [a, b] = [await mirrorState('n1'), await mirrorState('n2')];
    if (a === 'PRIM' && b === 'SECOND') {
      // The mirror is in sync; start_prim may still be running (initdb): write when it answers.
      const w = await lab.exec('client', ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', DB_URL, '-c',
        'create table if not exists demo (id serial primary key, msg text not null, node text, at timestamptz not null default now())',
        '-c', "insert into demo (msg, node) values ('hello from the demo', 'n1 (PRIM)')"], { env: { PGCONNECT_TIMEOUT: '2' } });
      if (w.code === 0) return 0;
    }
    if (Date.now() > deadline) {
      out.error(`mirror ${DB}: n1 ${a ?? '?'}, n2 ${b ?? '?'}: not PRIM/SECOND with PostgreSQL answering on ${DB_VIP} within 90 s; see ${lab.stateDir}/nodes/*/daemon.log and, in the nodes, /var/log/croft/${DB}.log`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Waits until the 2-tier application's web tier is UP on every node (it waited for the database). */
async function shopUp(lab: Lab, all: string[], out: Output): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const st = await nodeApiRequest<ClusterStatus>(lab.stateDir, 'n1', 'GET', '/api/v1/status').then((r) => (r.status === 200 ? r.body : null), () => null);
    if (all.every((n) => st?.modules[SHOP]?.nodes[n]?.state === 'UP')) return 0;
    if (Date.now() > deadline) {
      out.error(`farm ${SHOP} is not UP on ${all.join(', ')} within 30 s of the database's start; see ${lab.stateDir}/nodes/*/daemon.log and, in the nodes, /var/log/croft/${SHOP}.log`);
      if (st) out.log(formatStatus(st));
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
