// The one record every notification sink sends (webhook body, exec hook arguments and environment,
// syslog message) and the history (GET /api/v1/events) keeps: what happened on which node to
// which module, in the order this node saw it.
import type { NotifyKind } from '../../src/config/notify.js';

export type { NotifyKind } from '../../src/config/notify.js';

export interface NotifyEvent {
  /** Increases by one for every event of this daemon run (from 1); with `incarnation`, unique per node. */
  sequence: number;
  /** ISO 8601, UTC, of when the daemon saw it. */
  time: string;
  cluster: string;
  node: string;
  /** The daemon run (membership/persist.ts): a restart starts `sequence` again under a larger one. */
  incarnation: number;
  /** The module, or null for an event of the whole node (maintenance of the node). */
  module: string | null;
  kind: NotifyKind;
  /** state: module states; checker: healthy/failed; maintenance: off/on; config_mismatch: signatures. */
  from: string | null;
  to: string | null;
  cause: string;
  /** kind checker: which one. */
  checker?: string;
  /** kind peer: the other node seen up or down (module null). */
  peer?: string;
  /** A checker verdict that maintenance kept from acting (it would have done `cause` says what). */
  suppressed?: boolean;
}

/** What a source gives the bus; it adds sequence, time, cluster, node and incarnation. */
export type EventInput = Omit<NotifyEvent, 'sequence' | 'time' | 'cluster' | 'node' | 'incarnation'>;

/** One line for people (syslog, logs): "failover mirror-ack on n2: SECOND -> ALONE: peer lost". */
export function describeEvent(e: NotifyEvent, maxCause = 512): string {
  const cause = e.cause.length > maxCause ? `${e.cause.slice(0, maxCause)}…` : e.cause;
  const change = e.from !== null || e.to !== null ? `: ${e.from ?? '-'} -> ${e.to ?? '-'}` : '';
  const what = e.module ?? (e.peer !== undefined ? e.peer : 'node');
  return `${e.kind} ${what}${e.checker ? ` checker ${e.checker}` : ''} on ${e.node}${change}${e.suppressed ? ' (suppressed: maintenance)' : ''}: ${cause}`;
}
