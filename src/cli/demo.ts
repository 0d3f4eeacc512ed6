// croft demo: a 3-node lab running an nginx farm behind one virtual IP (modules/nginx-farm) and a
// light module (modules/demo-web: a small HTTP service with an http checker); prints the cluster
// status, the farm's map, a few clients' answers, the console address and how to stop it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterStatus } from '../daemon/daemon.js';
import { CroftError } from '../errors.js';
import { Lab } from '../lab/index.js';
import { nodeApiRequest } from '../lab/node-api.js';
import { repoRoot } from '../lab/paths.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { formatStatus } from './status.js';

const VIP = '10.77.0.100'; // modules/nginx-farm/module.yaml

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
  out.log(`croft demo: building a ${nodes}-node lab "${name}": farm "web" (nginx, VIP ${VIP}) and light module "hello"...`);
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
      && all.every((n) => st?.modules.web?.nodes[n]?.state === 'UP' && st?.modules.hello?.nodes[n]?.state === 'UP');
    if (ready) break;
    if (Date.now() > deadline) {
      out.error(`the cluster did not come up within 30 s; see ${lab.stateDir}/nodes/*/daemon.log`);
      if (st) out.log(formatStatus(st));
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
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
  out.log(`
The cluster runs in network namespaces (croft-${name}-*). Try:
  croft lab exec --name ${name} n1 -- croft status          status as seen from n1
  croft lab exec --name ${name} client -- curl -s --interface 10.100.0.9 http://${VIP}/   the farm, as one client
  croft lab exec --name ${name} n1 -- croft farm who web 10.100.0.9                 who serves that client
  croft lab exec --name ${name} client -- curl -s http://${lab.nodeAddress('n2')}:8080/   the light module on n2
  croft lab kill --name ${name} n2                           SIGKILL n2's daemon and applications
  croft lab start --name ${name} n2                          start it again
  croft lab cut --name ${name} n3 / heal --name ${name} n3   cut and heal n3's links
Console of n1 in your browser: croft lab console --name ${name} n1   (then http://127.0.0.1:9450/)
Inside the lab, every node serves its API and console on port 9450 (${api}), with the token of
  ${lab.configDir}/cluster.yaml
Logs (JSON): ${lab.stateDir}/nodes/<node>/daemon.log
Stop it: make demo-down   (or: croft lab down --name ${name})`);
  return 0;
}
