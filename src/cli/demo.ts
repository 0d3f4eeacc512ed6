// croft demo: a 3-node lab running the demo-web light module (a small HTTP service with an http
// checker); prints the cluster status, the console address and how to stop it.
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

export async function demoCommand(argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['nodes', 'name']);
  rejectUnknown(args, ['nodes', 'name']);
  const name = flagString(args, 'name') ?? 'demo';
  const nodes = Number(flagString(args, 'nodes') ?? 3);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) throw new CroftError('CROFT_ERR_USAGE', '--nodes must be 1 to 16');

  // The module folder is installed as it would be on a real cluster: /etc/croft/modules/web/.
  const config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-demo-'));
  fs.cpSync(path.join(repoRoot, 'modules', 'demo-web'), path.join(config, 'modules', 'web'), { recursive: true });
  out.log(`croft demo: building a ${nodes}-node lab "${name}" with the light module "web" (modules/demo-web)...`);
  let lab: Lab;
  try {
    lab = await Lab.up({ name, nodes, clients: 4, config, intervalMs: 200, timeoutMs: 1000 });
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
      && all.every((n) => st?.modules.web?.nodes[n]?.state === 'UP');
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
  out.log(`
The cluster runs in network namespaces (croft-${name}-*). Try:
  croft lab exec --name ${name} n1 -- croft status          status as seen from n1
  croft lab exec --name ${name} client -- curl -s http://${lab.nodeAddress('n2')}:8080/   the web module on n2
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
