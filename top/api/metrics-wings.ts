// The wings' metrics (issue 12, part 8): the mirror (link, ack latency histogram, bytes and ops
// replicated, dirty bytes, reintegration progress and totals, verify) and the farm (buckets per
// node, connections, takeovers), rendered from their status snapshots. Pure: the numbers come in,
// lines go out (test/unit/metrics-wings.test.ts); top/api/metrics.ts calls these.
import type { FarmStatus } from '../../farm/runtime.js';
import type { MirrorDetail } from '../../mirror/status.js';

type Labels = Record<string, string>;

/** What the renderers write to (top/api/metrics.ts Exposition). */
export interface MetricSink {
  add(name: string, type: 'counter' | 'gauge', help: string, value: number, labels?: Labels): void;
  histogram(name: string, help: string, h: { boundsSec: number[]; cumulative: number[]; sumSec: number; count: number }, labels?: Labels): void;
}

export function renderMirrorWing(x: MetricSink, module: string, ms: MirrorDetail): void {
  const m = { module };
  x.add('croft_mirror_link_up', 'gauge', '1 while the mirror\'s replication link is up as this node\'s state machine sees it (PRIM/SECOND in sync, or reintegrating).', ms.link ? 1 : 0, m);
  x.add('croft_mirror_dirty_bytes', 'gauge', 'ALONE: bytes of the dirty zones the peer lacks (0 in other states).', ms.dirtyBytes ?? 0, m);
  ms.links.forEach((l, i) => {
    const d = { module, dir: ms.dirs[i] ?? String(i) };
    x.add('croft_mirror_replicated_bytes_total', 'counter', 'Bytes sent to the peer on this dir\'s replication streams (changes and reintegrations), this mount.', l.bytesSent, d);
    x.add('croft_mirror_replicated_ops_total', 'counter', 'Changes of the application the peer acknowledged, this mount.', l.ackedOps, d);
    x.histogram('croft_mirror_ack_latency_seconds', 'Time from sending a change to the peer\'s acknowledgement (fixed buckets), this mount.', l.ackLatency, d);
  });
  const r = ms.reintegration;
  const running = r?.running === true && ms.reintegrating === 'source';
  x.add('croft_mirror_reintegration_running', 'gauge', '1 while this node copies a reintegration to its peer.', running ? 1 : 0, m);
  x.add('croft_mirror_reintegration_bytes_to_go', 'gauge', 'The running reintegration\'s estimate of file bytes still to copy (0 when none runs).', running ? r!.bytesToGo : 0, m);
  x.add('croft_mirror_reintegration_bytes_copied', 'gauge', 'File bytes the running (or last) reintegration copied.', r?.bytesCopied ?? 0, m);
  x.add('croft_mirror_reintegration_rate_bytes_per_second', 'gauge', 'Copy rate of the running reintegration (0 when none runs).', running ? r!.rateBytesPerSec : 0, m);
  x.add('croft_mirror_reintegration_eta_seconds', 'gauge', 'Estimated seconds until the running reintegration ends (-1 when unknown or none runs).',
    running && r!.etaMs !== null ? r!.etaMs / 1000 : -1, m);
  const t = ms.reintegrationTotals;
  x.add('croft_mirror_reintegration_bytes_total', 'counter', 'File bytes copied by reintegrations from this node since the daemon started (the running one included).',
    t.bytesCopied + (running ? r!.bytesCopied : 0), m);
  x.add('croft_mirror_reintegrations_total', 'counter', 'Reintegrations this node ran as the source, by result.', t.done, { module, result: 'done' });
  x.add('croft_mirror_reintegrations_total', 'counter', 'Reintegrations this node ran as the source, by result.', t.failed, { module, result: 'failed' });
  x.add('croft_mirror_resync_max_bytes_per_second', 'gauge', 'The reintegration bandwidth cap (resync_max_bytes_per_s; 0: none).', ms.resyncMaxBytesPerS ?? 0, m);
  const v = ms.verify;
  const last = v.last;
  x.add('croft_mirror_verify_last_result', 'gauge', 'The last verify on this node: 1 identical, 0 differences found, -1 failed to run or none yet.',
    last === null || last.identical === null ? -1 : last.identical ? 1 : 0, m);
  x.add('croft_mirror_verify_last_differences', 'gauge', 'Differences the last verify on this node found.', last?.differences ?? 0, m);
  x.add('croft_mirror_verify_last_timestamp_seconds', 'gauge', 'When the last verify on this node ended (Unix time; 0: none yet).', last ? last.atMs / 1000 : 0, m);
  x.add('croft_mirror_verify_last_duration_seconds', 'gauge', 'How long the last verify on this node took.', last ? last.durationMs / 1000 : 0, m);
  for (const result of ['identical', 'diverged', 'failed'] as const) {
    x.add('croft_mirror_verifies_total', 'counter', 'Verifies run on this node (scheduled by verify_every, or on demand), by result.', v.counters[result], { module, result });
  }
  x.add('croft_mirror_verify_every_seconds', 'gauge', 'verify_every of the module (0: on demand only).', v.everyMs === null ? 0 : v.everyMs / 1000, m);
}

/** `connections`: live TCP connections to the VIP in this node's namespace (null: could not read). */
export function renderFarmWing(x: MetricSink, module: string, st: FarmStatus, connections: number | null): void {
  const m = { module };
  x.add('croft_farm_active', 'gauge', '1 while this node\'s farm filter is in place.', st.active ? 1 : 0, m);
  x.add('croft_farm_buckets', 'gauge', 'Buckets of the farm (config buckets).', st.buckets, m);
  x.add('croft_farm_members', 'gauge', 'Nodes sharing the farm\'s buckets, as this node sees them.', st.members.length, m);
  for (const node of st.members) {
    x.add('croft_farm_buckets_owned', 'gauge', 'Buckets each member owns, as this node computes the map.', st.load[node] ?? 0, { module, node });
  }
  x.add('croft_farm_takeover_buckets', 'gauge', 'Buckets this node holds now that it took over from a dead node (their untracked TCP packets get a RST).', st.takeoverBuckets, m);
  x.add('croft_farm_takeovers_total', 'counter', 'Takeovers by this node: times it took buckets over from a node that died.', st.takeovers, m);
  x.add('croft_farm_takeover_buckets_total', 'counter', 'Buckets this node took over from dead nodes, over every takeover.', st.takeoverBucketsTotal, m);
  if (connections !== null) {
    x.add('croft_farm_connections', 'gauge', 'Live TCP connections to the VIP on this node (ESTABLISHED, SYN_RECV, CLOSE_WAIT).', connections, m);
  }
}
