// The query of GET /api/v1/events, checked: integers where integers are expected, or a 400.
import { CroftError } from '../../src/errors.js';
import type { EventFilter } from '../notify/bus.js';

function int(q: Record<string, string | undefined>, key: string, min: number): number | undefined {
  const v = q[key];
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,15}$/.test(v) || Number(v) < min) throw new CroftError('CROFT_ERR_USAGE', `${key}=${v.slice(0, 40)}: expected an integer of at least ${min}`);
  return Number(v);
}

export function eventsQuery(q: Record<string, string | undefined>): EventFilter {
  const f: EventFilter = {};
  if (q.module) f.module = q.module;
  if (q.node) f.node = q.node;
  if (q.kind) f.kind = q.kind;
  const since = int(q, 'since', 0);
  if (since !== undefined) f.since = since;
  const limit = int(q, 'limit', 1);
  if (limit !== undefined) f.limit = limit;
  return f;
}
