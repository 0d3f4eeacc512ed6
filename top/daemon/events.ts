// Where the node's events come from: each runtime's own events, turned into records of the bus
// (top/notify/bus.ts). The runtimes already emit one 'transition' per state change (beside the
// pino line "module state change" with node, module, from, to and cause), 'checker_change' for a
// checker's health, 'suppressed' for a verdict maintenance kept from acting, and the mirror's
// 'split_brain' when a side that ran alone gives up and quarantines what it wrote, and its
// 'verify_diverged' when a verify (scheduled by verify_every, or croft mirror verify) found differences.
import type { EventEmitter } from 'node:events';
import type { SuppressedVerdict } from '../../src/module/maintenance.js';
import type { EventBus } from '../notify/bus.js';
import type { EventInput, NotifyKind } from '../notify/event.js';

/**
 * The kind of a state change: a mirror SECOND that becomes ALONE took the application over from
 * its peer (a failover); ALONE -> PRIM (the source) and WAIT -> SECOND (the target) end a
 * reintegration; every other change is a `state` event. Every one carries from and to.
 */
export function transitionKind(kind: string, from: string, to: string): NotifyKind {
  if (kind !== 'mirror') return 'state';
  if (from === 'SECOND' && to === 'ALONE') return 'failover';
  if ((from === 'ALONE' && to === 'PRIM') || (from === 'WAIT' && to === 'SECOND')) return 'reintegration_done';
  return 'state';
}

/** Another node seen up or down (membership's peer_up / peer_down). */
export function peerEvent(peer: string, up: boolean, cause: string): EventInput {
  return { module: null, kind: 'peer', peer, from: up ? 'DOWN' : 'UP', to: up ? 'UP' : 'DOWN', cause };
}

/** A configuration that differs on `peer`: for a module, or (null) cluster.yaml; from/to carry the signatures. */
export function configMismatchEvent(peer: string, module: string | null, ours: string, theirs: string, detail: string): EventInput {
  return { module, kind: 'config_mismatch', from: ours, to: theirs,
    cause: `${module === null ? 'cluster.yaml' : `module ${module}`} differs on ${peer}${detail ? `: ${detail}` : ''}` };
}

/** Publishes a runtime's events on the bus (the listeners go with the runtime's removeAllListeners). */
export function publishRuntimeEvents(bus: EventBus, moduleKind: string, rt: EventEmitter): void {
  rt.on('transition', (t: { module: string; from: string; to: string; cause: string }) => {
    bus.publish({ module: t.module, kind: transitionKind(moduleKind, t.from, t.to), from: t.from, to: t.to, cause: t.cause });
  });
  rt.on('checker_change', (c: { module: string; checker: string; healthy: boolean; detail: string }) => {
    bus.publish({ module: c.module, kind: 'checker', checker: c.checker, from: c.healthy ? 'failed' : 'healthy', to: c.healthy ? 'healthy' : 'failed', cause: c.detail });
  });
  rt.on('suppressed', (v: SuppressedVerdict) => {
    bus.publish({
      module: v.module, kind: 'checker', checker: v.checker, suppressed: true,
      from: v.healthy ? 'failed' : 'healthy', to: v.healthy ? 'healthy' : 'failed',
      cause: v.healthy ? v.detail : `${v.detail}; on_failure ${v.wouldDo ?? '?'} suppressed (maintenance)`,
    });
  });
  rt.on('split_brain', (s: { module: string; reason: string; folder: string }) => {
    bus.publish({ module: s.module, kind: 'split_brain', from: null, to: null, cause: `${s.reason}; what this node wrote alone is in ${s.folder}` });
  });
  rt.on('verify_diverged', (v: { module: string; differences: number; scheduled: boolean; peer: string }) => {
    bus.publish({ module: v.module, kind: 'verify_diverged', from: null, to: null,
      cause: `${v.scheduled ? 'scheduled verify' : 'verify'} found ${v.differences} difference(s) on ${v.peer}; the next reintegration of ${v.peer} is a full one` });
  });
}
