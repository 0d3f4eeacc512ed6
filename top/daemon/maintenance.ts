// What is in maintenance on this node (`croft maintenance on|off [<module>]`): the whole node, or
// single modules. Kept in <state_dir>/maintenance.json, written atomically (a temporary file, fsync,
// rename, fsync of the folder), so that a daemon restart (or a crash, or a reboot) finds it as it
// was: an administrator working on a database by hand must not see croft take it back because the
// daemon restarted meanwhile. A module is in maintenance when it is or the node is.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileDurableSync } from '../../src/native/load.js';
import type { Logger } from '../../src/log/logger.js';

export interface MaintenanceEntry {
  /** ISO time it was set. */
  since: string;
  /** Who or what set it (the API's credential, the CLI...). */
  by: string;
}

export interface MaintenanceState {
  node: MaintenanceEntry | null;
  modules: Record<string, MaintenanceEntry>;
}

export const MAINTENANCE_FILE = 'maintenance.json';
/** The file is ours and small; anything larger is not read (no input grows memory unbounded). */
const MAX_BYTES = 1024 * 1024;

function parse(text: string): MaintenanceState | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  const o = v as Partial<MaintenanceState> | null;
  const entry = (x: unknown): x is MaintenanceEntry => x !== null && typeof x === 'object'
    && typeof (x as MaintenanceEntry).since === 'string' && typeof (x as MaintenanceEntry).by === 'string';
  if (o === null || typeof o !== 'object' || (o.node !== null && !entry(o.node)) || o.modules === null || typeof o.modules !== 'object' || Array.isArray(o.modules)) {
    return 'expected {"node": null or {"since", "by"}, "modules": {...}}';
  }
  for (const [k, x] of Object.entries(o.modules)) if (!entry(x)) return `module ${k}: expected {"since", "by"}`;
  return { node: o.node ?? null, modules: { ...o.modules } };
}

export class Maintenance {
  readonly file: string;
  #state: MaintenanceState = { node: null, modules: {} };

  constructor(stateDir: string, private readonly log?: Logger) {
    this.file = path.join(stateDir, MAINTENANCE_FILE);
  }

  /**
   * Reads the file. A file that cannot be read or parsed is logged and read as "everything in
   * maintenance": what it held is unknown, and the safe guess for a file that says someone works
   * by hand is that they still do (`croft maintenance off` clears it).
   */
  load(): MaintenanceState {
    let text: string;
    try {
      const st = fs.statSync(this.file);
      if (st.size > MAX_BYTES) throw new Error(`${st.size} bytes, more than ${MAX_BYTES}`);
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return this.snapshot();
      return this.#unreadable((e as Error).message);
    }
    const r = parse(text);
    if (typeof r === 'string') return this.#unreadable(r);
    this.#state = r;
    return this.snapshot();
  }

  #unreadable(why: string): MaintenanceState {
    this.#state = { node: { since: new Date().toISOString(), by: `unreadable ${this.file}` }, modules: {} };
    this.log?.error({ event: 'maintenance_unreadable', file: this.file, err: why },
      `${this.file} cannot be read (${why}): the whole node is taken as in maintenance; \`croft maintenance off\` ends it`);
    return this.snapshot();
  }

  snapshot(): MaintenanceState {
    return structuredClone(this.#state);
  }

  node(): boolean {
    return this.#state.node !== null;
  }

  /** The module is in maintenance: its own, or the whole node's. */
  covers(module: string): boolean {
    return this.#state.node !== null || Object.hasOwn(this.#state.modules, module);
  }

  /** Sets or clears (module null: the node's); returns false when nothing changed. Persisted before it returns. */
  set(module: string | null, on: boolean, by: string): boolean {
    const next = structuredClone(this.#state);
    const entry = { since: new Date().toISOString(), by };
    if (module === null) {
      if (on === (next.node !== null)) return false;
      next.node = on ? entry : null;
    } else {
      if (on === Object.hasOwn(next.modules, module)) return false;
      if (on) next.modules[module] = entry;
      else delete next.modules[module];
    }
    this.#write(next);
    this.#state = next;
    return true;
  }

  #write(state: MaintenanceState): void {
    writeFileDurableSync(this.file, `${JSON.stringify(state, null, 2)}\n`, 0o644, 0o755);
  }
}
