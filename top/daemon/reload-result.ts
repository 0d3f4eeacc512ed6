// What `croft reload` did on a node, and its one-line description (CLI, config push).
import type { ConfigDiff } from '../../src/config/diff.js';

/** What a reload did on this node (module names, sorted), with the whole configuration's diff. */
export interface ReloadResult {
  node: string;
  /** Created and started here (autostart): modules added, or that now name this node. */
  started: string[];
  /** Stopped (their scripts ran) and dropped: modules removed, or that no longer name this node. */
  stopped: string[];
  /** Changed: stopped, re-created from the new configuration, started again. */
  restarted: string[];
  /** Runtimes kept as they were (same object, no transition). */
  untouched: string[];
  diff: ConfigDiff;
}

/** "started a; restarted b; stopped c; 2 untouched", or "nothing changed". */
export function describeReload(r: ReloadResult): string {
  const parts: string[] = [];
  if (r.started.length) parts.push(`started ${r.started.join(', ')}`);
  if (r.restarted.length) parts.push(`restarted ${r.restarted.join(', ')}`);
  if (r.stopped.length) parts.push(`stopped ${r.stopped.join(', ')}`);
  if (parts.length === 0) return `nothing changed on ${r.node} (${r.untouched.length} module${r.untouched.length === 1 ? '' : 's'} untouched)`;
  return `${parts.join('; ')}; ${r.untouched.length} untouched`;
}
