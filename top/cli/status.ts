// croft status [--json]: nodes with their state as seen from this node; modules with their state on each node.
import type { ClusterStatus } from '../daemon/daemon.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { apiRequest, defaultConfigDir, targetFromConfig } from './client.js';
import { table } from './table.js';

export async function statusCommand(argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'api', 'token']);
  rejectUnknown(args, ['config', 'api', 'token', 'json']);
  const target = targetFromConfig(flagString(args, 'config') ?? defaultConfigDir, flagString(args, 'api'), flagString(args, 'token'));
  const st = await apiRequest<ClusterStatus>(target, 'GET', '/api/v1/status');
  if (args.flags.has('json')) {
    out.log(JSON.stringify(st, null, 2));
    return 0;
  }
  out.log(formatStatus(st));
  return 0;
}

export function formatStatus(st: ClusterStatus): string {
  const lines: string[] = [];
  lines.push(`cluster ${st.cluster}, seen from ${st.node}: view epoch ${st.view.epoch} [${st.view.members.join(' ')}]${st.converged ? ', converged' : ', converging'}`);
  lines.push('');
  const nodeRows = [['NODE', 'STATE', ...st.lans.map((l) => `LAST HEARD ${l}`), 'VERSION', 'CONFIG']];
  for (const n of st.nodes) {
    nodeRows.push([n.name + (n.self ? ' (this node)' : ''), n.state,
      ...st.lans.map((_, i) => (n.self ? '-' : fmtAgo(n.lastHeardAgoMs?.[i] ?? null))), fmtVersion(n), fmtConfig(n)]);
  }
  lines.push(table(nodeRows));
  if (st.mixedVersions) {
    lines.push(`mixed versions: the nodes up do not all run the same croft (a rolling upgrade under way? README: "Upgrading"); `
      + `this node speaks protocol ${st.protocol.min}..${st.protocol.current}`);
  }
  for (const m of st.configMismatch ?? []) {
    lines.push(`config mismatch: ${m.node} differs from ${st.node} in ${m.differs.join(', ')} (croft config push makes them the same)`);
  }
  const names = st.nodes.map((n) => n.name);
  const modules = Object.entries(st.modules);
  lines.push('');
  if (modules.length === 0) {
    lines.push('no modules configured');
  } else {
    const rows = [['MODULE', 'KIND', ...names]];
    for (const [m, v] of modules) {
      rows.push([m, v.kind, ...names.map((n) => {
        const s = v.nodes[n];
        if (!s) return '-';
        // A mirror's data generation, so a person sees who holds the newest data ("PRIM g3").
        const gen = s.mirror ? ` g${s.mirror.generation}` : '';
        // Maintenance is known for this node (the one answering): marked with "[maint]".
        const maint = n === st.node && inMaintenance(st, m) ? ' [maint]' : '';
        const differs = v.configDiffers?.includes(n) ? ' (config differs)' : '';
        return (s.known ? `${s.state}${gen}${maint}` : `${s.state}?`) + differs;
      })]);
    }
    lines.push(table(rows));
    if (modules.some(([, v]) => Object.values(v.nodes).some((s) => !s.known))) {
      lines.push('(? = not known: that node is down or has not announced the module)');
    }
  }
  const mt = st.maintenance;
  if (mt?.node) {
    lines.push('', `maintenance: the whole node ${st.node} since ${mt.node.since} (${mt.node.by}): checkers and automatic failover suspended; \`croft maintenance off\` ends it`);
  } else if (mt && Object.keys(mt.modules).length > 0) {
    lines.push('', `maintenance on ${st.node}: ${Object.entries(mt.modules).map(([m, e]) => `${m} since ${e.since}`).join(', ')} ([maint]: checkers suspended; \`croft maintenance off <module>\` ends it)`);
  }
  return lines.join('\n');
}

function inMaintenance(st: ClusterStatus, module: string): boolean {
  return Boolean(st.maintenance?.node) || Object.hasOwn(st.maintenance?.modules ?? {}, module);
}

/** "0.1.0 p3", "p2" (protocol 2 announces no package), "-" when not known. */
function fmtVersion(n: ClusterStatus['nodes'][number]): string {
  if (n.protocol === null || n.protocol === undefined) return '-';
  return `${n.package ? `${n.package} ` : ''}p${n.protocol}`;
}

function fmtConfig(n: ClusterStatus['nodes'][number]): string {
  if (n.self) return 'reference';
  if (n.configDiffers === null || n.configDiffers === undefined) return '-';
  return n.configDiffers.length === 0 ? 'same' : `differs: ${n.configDiffers.join(', ')}`;
}

function fmtAgo(ms: number | null): string {
  if (ms === null) return 'never';
  return ms < 10_000 ? `${ms} ms ago` : `${(ms / 1000).toFixed(1)} s ago`;
}
