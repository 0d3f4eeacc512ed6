// The source's side of a reintegration, as the runtime runs it: the facts for the choice of its
// kind (mirror/rules.ts chooseReintegration: full or the dirty log's zones), the data plane's copy,
// and its figures for status (lastReintegration). A run superseded (aborted by the machine, or a
// newer one began) reports nothing: `token` tells them apart.
import type { ModuleLogger } from '../src/module/types.js';
import type { Clock, MirrorDataPlanePort } from './effects.js';
import { chooseReintegration } from './rules.js';
import type { LastReintegration } from './status.js';

export type ReintegrationOutcome = 'done' | 'failed' | 'superseded';

export class ReintegrationRun {
  #token = 0;
  /** The last one finished (status), or null. */
  last: LastReintegration | null = null;
  /** Why the next one must compare whole trees (verify found the peer diverged), or null. */
  fullNext: string | null = null;
  /** Since the daemon started (metrics): runs by outcome, file bytes copied by the finished ones. */
  readonly totals = { done: 0, failed: 0, bytesCopied: 0 };

  constructor(private readonly module: string, private readonly self: string, private readonly peer: string,
    private readonly dp: MirrorDataPlanePort, private readonly clock: Clock, private readonly log: ModuleLogger) {}

  /** The machine gave the running one up: its end, whatever it is, is not reported. */
  abort(): void {
    this.#token++;
  }

  /** Runs one as its source; resolves with how it ended. */
  async run(generation: number, peerGeneration: number | null): Promise<ReintegrationOutcome> {
    const module = this.module;
    const token = ++this.#token;
    let trusted = false;
    let dirtyBytes = 0;
    let dirtyEntries = 0;
    try {
      trusted = this.dp.dirtyTrusted();
      dirtyBytes = await this.dp.dirtyBytesAsync();
      dirtyEntries = this.dp.dirtyEntries();
    } catch {
      trusted = false;
    }
    // Given up while it read the dirty log (the machine's reintegrate_abort ran meanwhile, in the
    // same queue: seen after a swap, when the new ALONE's link fell while it mounted): it must not
    // start a copy nobody waits for, beside (or instead of) the one that follows.
    if (token !== this.#token) return 'superseded';
    const { full, why } = chooseReintegration({ trusted, generation, peerGeneration, fullNext: this.fullNext });
    const start = { full, dirtyBytes, dirtyEntries, atMs: this.clock.now() };
    this.log.info({ event: 'mirror_reintegration', module, role: 'source', full, dirtyBytes, dirtyEntries, why },
      `reintegration of ${this.peer} from ${this.self}: ${full ? `full (${why})` : `dirty zones: ${dirtyBytes} bytes in ${dirtyEntries} entries`}`);
    try {
      const results = await this.dp.reintegrate(full);
      if (token !== this.#token) return 'superseded';
      const now = this.clock.now();
      const last: LastReintegration = {
        full,
        dirtyBytesAtStart: start.dirtyBytes,
        dirtyEntriesAtStart: start.dirtyEntries,
        bytesCopied: results.reduce((s, r) => s + r.bytesCopied, 0),
        bytesSent: results.reduce((s, r) => s + r.bytesSent, 0),
        durationMs: now - start.atMs,
        finishedAtMs: now,
      };
      this.last = last;
      this.totals.done++;
      this.totals.bytesCopied += last.bytesCopied;
      if (full) this.fullNext = null;
      this.log.info({ event: 'mirror_reintegration_done', module, ...last }, `reintegration done: ${last.bytesCopied} bytes copied (${full ? 'full' : `dirty log: ${last.dirtyBytesAtStart} bytes`}) in ${last.durationMs} ms`);
      return 'done';
    } catch (e) {
      if (token !== this.#token) return 'superseded';
      this.totals.failed++;
      // What it copied before it failed was sent all the same (the counter never goes back).
      try {
        this.totals.bytesCopied += this.dp.reintegrationStatus()?.bytesCopied ?? 0;
      } catch { /* unmounted meanwhile */ }
      this.log.warn({ event: 'mirror_reintegration_failed', module, err: (e as Error).message, code: (e as { code?: string }).code }, `reintegration failed: ${(e as Error).message}`);
      return 'failed';
    }
  }
}
