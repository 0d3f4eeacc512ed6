// Prometheus text exposition (format 0.0.4), rendered from a snapshot of the daemon.
import type { Daemon } from '../daemon/daemon.js';
import { logDropped } from '../../src/log/logger.js';
import { mirrorProtocol } from '../../src/native/mirror.js';
import { LiveConnectionsWatch } from '../../farm/connections.js';
import { renderFarmWing, renderMirrorWing, type MetricSink } from './metrics-wings.js';

type Labels = Record<string, string>;

/** Samples grouped by metric (the format wants each metric's lines together), in first-seen order. */
export class Exposition implements MetricSink {
  private readonly groups = new Map<string, string[]>();

  #group(name: string, type: string, help: string): string[] {
    let lines = this.groups.get(name);
    if (!lines) {
      lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
      this.groups.set(name, lines);
    }
    return lines;
  }

  add(name: string, type: 'counter' | 'gauge', help: string, value: number, labels: Labels = {}): void {
    this.#group(name, type, help).push(sample(name, labels, value));
  }

  /** A histogram: cumulative `_bucket` lines with `le`, then `_sum` and `_count`. */
  histogram(name: string, help: string, h: { boundsSec: number[]; cumulative: number[]; sumSec: number; count: number }, labels: Labels = {}): void {
    const lines = this.#group(name, 'histogram', help);
    h.boundsSec.forEach((b, i) => lines.push(sample(`${name}_bucket`, { ...labels, le: String(b) }, h.cumulative[i] ?? 0)));
    lines.push(sample(`${name}_bucket`, { ...labels, le: '+Inf' }, h.count));
    lines.push(sample(`${name}_sum`, labels, h.sumSec));
    lines.push(sample(`${name}_count`, labels, h.count));
  }

  text(): string {
    return `${[...this.groups.values()].flat().join('\n')}\n`;
  }
}

function sample(name: string, labels: Labels, value: number): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
  return `${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

const moduleStates = ['STOP', 'WAIT', 'UP', 'ALONE', 'PRIM', 'SECOND'];

export function renderMetrics(daemon: Daemon): string {
  const x = new Exposition();
  const c = daemon.membership.counters();
  x.add('croft_heartbeats_sent_total', 'counter', 'Heartbeat datagrams sent (all LANs).', c.sent);
  x.add('croft_heartbeats_received_total', 'counter', 'Datagrams received on the heartbeat sockets.', c.received);
  x.add('croft_heartbeats_accepted_total', 'counter', 'Heartbeats authenticated and accepted.', c.accepted);
  x.add('croft_heartbeats_quiet_total', 'counter', 'Of the accepted, repeats of the last accepted heartbeat noted by the pump\'s thread (the quiet path).', c.quiet);
  for (const [reason, n] of Object.entries(c.dropped)) {
    x.add('croft_heartbeats_dropped_total', 'counter', 'Datagrams dropped, by reason.', n, { reason });
  }
  for (const [reason, n] of Object.entries(logDropped())) {
    x.add('croft_log_dropped_total', 'counter', 'Log records dropped (destination too slow, or too many a second), by reason.', n, { reason });
  }
  const status = daemon.status();
  x.add('croft_view_epoch', 'gauge', 'Epoch of this node\'s membership view.', status.view.epoch);
  x.add('croft_view_members', 'gauge', 'Nodes in this node\'s view, itself included.', status.view.members.length);
  x.add('croft_view_converged', 'gauge', '1 when every member announces the same view.', status.converged ? 1 : 0);
  for (const n of status.nodes) {
    x.add('croft_peer_up', 'gauge', '1 when the node is up as seen from here.', n.state === 'UP' ? 1 : 0, { peer: n.name });
  }
  for (const n of status.nodes) {
    if (n.protocol === null) continue;
    x.add('croft_node_version', 'gauge', 'Package and protocol version each up node announces (1).', 1, { peer: n.name, package: n.package ?? '', protocol: String(n.protocol) });
  }
  x.add('croft_mixed_versions', 'gauge', '1 while the up nodes do not all run the same package and protocol version.', status.mixedVersions ? 1 : 0);
  for (const n of status.nodes) {
    if (n.self || n.configDiffers === null) continue;
    x.add('croft_config_mismatch', 'gauge', '1 while the node announces another configuration signature than this node\'s.', n.configDiffers.length > 0 ? 1 : 0, { peer: n.name });
  }
  x.add('croft_config_push_total', 'counter', 'Pushed configurations received (croft config push), by result.', daemon.push.accepted, { result: 'accepted' });
  for (const [reason, n] of Object.entries(daemon.push.refused)) {
    x.add('croft_config_push_total', 'counter', 'Pushed configurations received (croft config push), by result.', n, { result: `refused_${reason}` });
  }
  if (daemon.mirrors.size > 0) {
    x.add('croft_mirror_protocol_refused_total', 'counter', 'Replication handshakes refused for their protocol version (either side).', mirrorProtocol().versionRefusals);
  }
  for (const [module, rt] of daemon.runtimes) {
    const st = rt.status();
    for (const s of moduleStates) {
      x.add('croft_module_state', 'gauge', 'Local module state (1 for the current one).', st.state === s ? 1 : 0, { module, state: s });
    }
    x.add('croft_module_restarts', 'gauge', 'Restarts counted in the current maxloop window.', st.restarts, { module });
    for (const ch of st.checkers) {
      x.add('croft_checker_healthy', 'gauge', 'Checker health: 1 healthy, 0 failed, -1 unknown.',
        ch.health === 'healthy' ? 1 : ch.health === 'failed' ? 0 : -1, { module, checker: ch.name, type: ch.type });
    }
    const counters = rt.counters();
    for (const [key, n] of Object.entries(counters.probes)) {
      const [checker = key, result = ''] = splitLast(key);
      x.add('croft_checker_probes_total', 'counter', 'Checker probes, by result.', n, { module, checker, result });
    }
    for (const [key, n] of Object.entries(counters.scriptRuns)) {
      const [script = key, result = ''] = splitLast(key);
      x.add('croft_script_runs_total', 'counter', 'Module script runs, by result.', n, { module, script, result });
    }
  }
  const maint = status.maintenance;
  x.add('croft_node_maintenance', 'gauge', '1 while this whole node is in maintenance (croft maintenance on).', maint.node ? 1 : 0);
  for (const module of daemon.runtimes.keys()) {
    x.add('croft_module_maintenance', 'gauge', '1 while the module is in maintenance on this node (its own, or the node\'s): checker verdicts suppressed.',
      daemon.maintenance.covers(module) ? 1 : 0, { module });
  }
  x.add('croft_events_total', 'counter', 'Events published on this node (state changes, checkers, failovers...) since the daemon started.', daemon.events.sequence);
  for (const [sink, n] of Object.entries(daemon.events.counters())) {
    x.add('croft_notifications_sent_total', 'counter', 'Notifications delivered, by sink (webhook, exec, syslog).', n.sent, { sink });
    x.add('croft_notifications_failed_total', 'counter', 'Notifications given up on after every attempt failed, by sink.', n.failed, { sink });
    x.add('croft_notifications_dropped_total', 'counter', 'Notifications dropped unsent because the sink\'s queue was full (oldest first), by sink.', n.dropped, { sink });
    x.add('croft_notifications_queued', 'gauge', 'Notifications waiting to be delivered, by sink.', n.queued, { sink });
  }
  for (const [module, mr] of daemon.mirrors) {
    const ms = mr.mirrorStatus();
    ms.replicas.forEach((r, i) => {
      if (r === null) return;
      const dir = ms.dirs[i] ?? String(i);
      x.add('croft_mirror_replica_connected', 'gauge', '1 while this node\'s replica holds a session with the primary (0: none, or it ended: see last_error in the status).', r.connected ? 1 : 0, { module, dir });
      x.add('croft_mirror_replica_sessions_total', 'counter', 'Authenticated replication sessions accepted by this replica.', r.sessions, { module, dir });
      x.add('croft_mirror_replica_refused_total', 'counter', 'Replication connections refused: in the handshake (wrong key, not a croft peer, too slow), or at once (not the peer\'s address, session cap).', r.refused, { module, dir, reason: 'handshake' });
      x.add('croft_mirror_replica_refused_total', 'counter', 'Replication connections refused: in the handshake (wrong key, not a croft peer, too slow), or at once (not the peer\'s address, session cap).', r.rejected, { module, dir, reason: 'rejected' });
      x.add('croft_mirror_replica_tampered_total', 'counter', 'Replication sessions ended on a record that failed authentication (flipped, forged, replayed, reordered).', r.tampered, { module, dir });
    });
    ms.links.forEach((l, i) => {
      const dir = ms.dirs[i] ?? String(i);
      x.add('croft_mirror_link_connected', 'gauge', '1 while this node\'s mount streams its changes to the peer.', l.connected ? 1 : 0, { module, dir });
      x.add('croft_mirror_link_tampered_total', 'counter', 'Streams to the peer ended on a record that failed authentication (this mount).', l.tampered, { module, dir });
    });
    renderMirrorWing(x, module, ms);
    const d = ms.dirtyLog;
    if (d === null) continue;
    x.add('croft_mirror_dirty_log_failing', 'gauge', '1 while the mirror\'s dirty log cannot write: changes fail with EIO.', d.failing ? 1 : 0, { module });
    x.add('croft_mirror_dirty_log_write_failures_total', 'counter', 'Failed writes, syncs or compactions of the dirty log (this mount).', d.writeFailures, { module });
    x.add('croft_mirror_dirty_log_refused_total', 'counter', 'Changes refused with EIO because the dirty log could not record them (this mount).', d.marksRefused, { module });
  }
  for (const [module, farm] of daemon.farms) {
    const st = farm.status();
    renderFarmWing(x, module, st, st.vip === null ? null : connectionsWatch(st.vip).value());
  }
  return x.text();
}

/** One watch per VIP (a handful per daemon): the count is read off the JS thread, at most once a second. */
const connectionWatches = new Map<string, LiveConnectionsWatch>();
export function connectionsWatch(vip: string): LiveConnectionsWatch {
  let w = connectionWatches.get(vip);
  if (!w) {
    w = new LiveConnectionsWatch(vip);
    connectionWatches.set(vip, w);
  }
  return w;
}

function splitLast(key: string): [string, string] {
  const i = key.lastIndexOf(':');
  return i < 0 ? [key, ''] : [key.slice(0, i), key.slice(i + 1)];
}
