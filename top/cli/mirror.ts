// croft prim|second|swap <module>: SafeKit's mirror commands, on this node's daemon (a refusal
// exits 1 with the machine's reason).
// croft mirror status <module> [--json]: both nodes' states, role, data, generation, link, ack, mode,
// dirty bytes, reintegration progress (bytes to go, rate, ETA).
// croft mirror verify <module> [--json]: compares both sides by checksum (run it on the PRIM);
// exit 1 when they differ.
import type { MirrorDetail, MirrorRuntime } from '../../mirror/runtime.js';
import type { ClusterStatus } from '../daemon/daemon.js';
import { codes, CroftError } from '../../src/errors.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { apiRequest, defaultConfigDir, targetFromConfig, type ApiTarget } from './client.js';
import { table } from './table.js';

const usage = `usage: croft prim|second|swap <module>
       croft mirror status <module> [--json]
       croft mirror verify <module> [--json]`;

export type MirrorStatusView = MirrorDetail & { cluster?: ClusterStatus['modules'][string] };

/** What POST .../mirror/verify answers: the runtime's verify result, with where and how long. */
export type VerifyView = { node: string; module: string; durationMs: number } & Awaited<ReturnType<MirrorRuntime['verify']>>;

function target(argv: string[], extraFlags: string[] = []): { module: string; json: boolean; target: ApiTarget } {
  const args = parseArgs(argv, ['config', 'api', 'token']);
  rejectUnknown(args, ['config', 'api', 'token', 'json', ...extraFlags]);
  const [module, ...extra] = args.positionals;
  if (!module || extra.length) throw new CroftError('CROFT_ERR_USAGE', usage);
  return {
    module,
    json: args.flags.has('json'),
    target: targetFromConfig(flagString(args, 'config') ?? defaultConfigDir, flagString(args, 'api'), flagString(args, 'token')),
  };
}

/** The daemon's refusal message without the HTTP wrapping, for people. */
function refusal(err: unknown): never {
  if (err instanceof CroftError && err.code === 'CROFT_ERR_API') {
    const m = new RegExp(`HTTP ${codes.CROFT_ERR_MIRROR_REFUSED.statusCode}: (.*)$`, 's').exec(err.message);
    if (m) throw new CroftError('CROFT_ERR_MIRROR_REFUSED', m[1]!);
  }
  throw err;
}

export async function mirrorRoleCommand(command: 'prim' | 'second' | 'swap', argv: string[], out: Output): Promise<number> {
  const { module, json, target: t } = target(argv);
  const r = await apiRequest<{ node: string }>(t, 'POST', `/api/v1/modules/${encodeURIComponent(module)}/${command}`).catch(refusal);
  out.log(json ? JSON.stringify(r) : `${command} ${module} on ${r.node}: accepted (see \`croft mirror status ${module}\`)`);
  return 0;
}

export async function mirrorCommand(argv: string[], out: Output): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'status') {
    const { module, json, target: t } = target(rest);
    const st = await apiRequest<MirrorStatusView>(t, 'GET', `/api/v1/modules/${encodeURIComponent(module)}/mirror`);
    out.log(json ? JSON.stringify(st, null, 2) : formatMirrorStatus(st));
    return 0;
  }
  if (sub === 'verify') {
    const { module, json, target: t } = target(rest);
    // A checksum of every file on both sides: minutes for large trees.
    const v = await apiRequest<VerifyView>(t, 'POST', `/api/v1/modules/${encodeURIComponent(module)}/mirror/verify`, 3_600_000);
    if (json) {
      out.log(JSON.stringify(v, null, 2));
    } else {
      out.log(`${module}: ${v.identical ? 'identical' : `${v.differences.length} difference(s)`} on both nodes (${v.entriesCompared} entries, ${fmtBytes(v.bytesCompared)} compared in ${v.durationMs} ms, from ${v.node})`);
      for (const d of v.differences.slice(0, 100)) out.log(`  ${d.path}: ${d.what}`);
      if (v.differences.length > 100) out.log(`  ... and ${v.differences.length - 100} more (--json lists all)`);
    }
    return v.identical ? 0 : 1;
  }
  throw new CroftError('CROFT_ERR_USAGE', usage);
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return ms < 10_000 ? `${ms} ms` : ms < 600_000 ? `${(ms / 1000).toFixed(0)} s` : `${(ms / 60_000).toFixed(0)} min`;
}

export function formatMirrorStatus(st: MirrorStatusView): string {
  const lines: string[] = [];
  lines.push(`mirror ${st.module}, seen from ${st.node}: ${st.state} (${st.role}), cause: ${st.cause}`);
  const peerState = st.peerView?.state ?? (st.cluster?.nodes[st.peer]?.known ? st.cluster.nodes[st.peer]!.state : 'unknown');
  const rows = [['NODE', 'STATE', 'DATA', 'GENERATION', 'ELIGIBLE']];
  rows.push([`${st.node} (this node)`, st.state, st.data, String(st.generation), st.target === 'run' ? 'wanted' : 'stopped']);
  rows.push([st.peer, peerState, st.peerView ? (st.peerView.dataUpToDate ? 'up-to-date' : 'not up-to-date') : '-',
    st.peerView ? String(st.peerView.generation) : '-', st.peerView ? (st.peerView.eligible ? 'yes' : 'no') : '-']);
  lines.push(table(rows));
  lines.push('');
  lines.push(`link: ${st.link ? 'up' : 'down'}; ack: ${st.ack}; mode: ${st.mode}; dirs: ${st.dirs.join(', ')}; mounted here: ${st.mounted ? (st.fenced ? 'yes (fenced)' : 'yes') : 'no'}`);
  lines.push(`application here: ${st.application}`);
  // `vips ??`: a daemon of the previous version (a rolling upgrade) reports `vip` alone.
  lines.push(`VIP: ${st.vip === null ? 'none' : (st.vips ?? [st.vip]).join(' ')}${st.vip ? (st.vipHeld ? ' (held here)' : ' (not here)') : ''}; witness: ${st.witness.type}${st.witness.type === 'none' ? '' : ` (${st.witness.contending ? (st.witness.allowed ? 'allowed' : 'not allowed') : 'not contending'}: ${st.witness.detail})`}`);
  if (st.dirtyBytes !== null) lines.push(`dirty: ${fmtBytes(st.dirtyBytes)} to copy to ${st.peer}${st.dirtyTrusted === false ? ' (log not trusted: a full sync will compare the trees)' : ''}`);
  const r = st.reintegration;
  if (st.reintegrating !== 'none') {
    if (r && r.running) {
      lines.push(`reintegration (${st.reintegrating}, ${r.full ? 'full' : 'dirty zones'}, ${r.phase}): ${fmtBytes(r.bytesToGo)} to go, ${fmtBytes(r.bytesCopied)} copied, ${fmtBytes(r.rateBytesPerSec)}/s, ETA ${fmtMs(r.etaMs)}`);
    } else {
      lines.push(`reintegration: ${st.reintegrating === 'target' ? `into this node from ${st.peer}` : `of ${st.peer}`}, in progress`);
    }
  }
  const last = st.lastReintegration;
  if (last) {
    lines.push(`last reintegration: ${last.full ? 'full' : `dirty log (${fmtBytes(last.dirtyBytesAtStart)} in ${last.dirtyEntriesAtStart} entries)`}, ${fmtBytes(last.bytesCopied)} copied in ${fmtMs(last.durationMs)}`);
  }
  // Absent from a daemon of an earlier version (mixed versions during an upgrade).
  const excluded = (st.excludes ?? []).flatMap((x, i) => (x.length > 0 ? [`${st.dirs[i]}: ${x.join(', ')}`] : []));
  if (excluded.length > 0) lines.push(`excluded (not replicated): ${excluded.join('; ')}`);
  if (st.resyncMaxBytesPerS) lines.push(`reintegration cap: ${fmtBytes(st.resyncMaxBytesPerS)}/s`);
  const v = st.verify;
  if (v) {
    const lv = v.last;
    const result = lv === null ? 'none yet'
      : lv.identical === null ? `failed: ${lv.error ?? '?'}`
        : `${lv.identical ? 'identical' : `${lv.differences} difference(s)`} (${lv.entriesCompared} entries, ${fmtBytes(lv.bytesCompared)}, ${fmtMs(lv.durationMs)}${lv.scheduled ? ', scheduled' : ''}) at ${new Date(lv.atMs).toISOString()}`;
    lines.push(`verify: ${v.everyMs === null ? 'on demand' : `every ${fmtMs(v.everyMs)}`}; last here: ${result}`);
  }
  return lines.join('\n');
}
