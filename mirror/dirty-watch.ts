// What the runtime watches of the dirty logs for status and the log: their health (logged when
// they start and stop failing) and the dirty bytes (one lstat per dirty path, so computed off the
// JS thread, which also sends the heartbeats, and at most once per DIRTY_BYTES_EVERY_MS). No
// decision here: the machine never reads these.
import type { ModuleLogger } from '../src/module/types.js';
import type { DirtyLogHealth } from './driver-dataplane.js';
import type { Clock, MirrorDataPlanePort } from './effects.js';

/** Status recomputes the dirty bytes at most this often. */
export const DIRTY_BYTES_EVERY_MS = 500;

export class DirtyWatch {
  #failing = false;
  #bytes: { atMs: number; bytes: number } | null = null;
  #pending = false;

  constructor(private readonly module: string, private readonly dp: MirrorDataPlanePort, private readonly clock: Clock, private readonly log: ModuleLogger) {}

  /** Forget the dirty bytes computed (a value of another state, or of an earlier ALONE). */
  reset(): void {
    this.#bytes = null;
  }

  /** The last dirty bytes computed (null until the first is in); starts a new computation when due. */
  bytes(): number | null {
    const now = this.clock.now();
    const c = this.#bytes;
    if (!this.#pending && (c === null || now - c.atMs >= DIRTY_BYTES_EVERY_MS)) {
      this.#pending = true;
      this.dp.dirtyBytesAsync().then(
        (bytes) => { this.#bytes = { atMs: this.clock.now(), bytes }; },
        () => { /* the log is being closed by an unmount in progress */ },
      ).finally(() => { this.#pending = false; });
    }
    return c?.bytes ?? null;
  }

  /** The dirty logs' health while mounted (null otherwise); a change of failing is logged. */
  health(): DirtyLogHealth | null {
    if (!this.dp.mounted) return null;
    let h: DirtyLogHealth | null = null;
    try {
      h = this.dp.dirtyLogStatus();
    } catch {
      return null; // the log is being closed by an unmount in progress
    }
    const failing = h?.failing ?? false;
    if (h !== null && failing !== this.#failing) {
      this.#failing = failing;
      const module = this.module;
      if (failing) {
        this.log.error({ event: 'mirror_dirty_log_failing', module, error: h.lastError, writeFailures: h.writeFailures },
          `dirty log cannot write (${h.lastError ?? 'unknown error'}): changes it cannot record fail with EIO until it can write again`);
      } else {
        this.log.info({ event: 'mirror_dirty_log_recovered', module, writeFailures: h.writeFailures, marksRefused: h.marksRefused },
          `dirty log writes again (${h.writeFailures} failures, ${h.marksRefused} changes refused)`);
      }
    }
    return h;
  }
}
