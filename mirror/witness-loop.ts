// The witness checks while the machine contends: one check at once, then every period (a third of
// the verdict's validity, so a healthy primary never runs out between checks), each verdict fed
// back with the epoch of the contention it serves; a new contention or a release ends the loop.
import type { ModuleLogger } from '../src/module/types.js';
import type { Clock, MirrorEffects } from './effects.js';
import type { Witness, WitnessContext, WitnessVerdict } from './types.js';

export class WitnessLoop {
  #witness: Witness | null = null;
  #epoch = -1;
  #closed = false;

  constructor(
    private readonly module: string,
    private readonly make: MirrorEffects['witness'],
    private readonly clock: Clock,
    private readonly periodMs: number,
    private readonly log: ModuleLogger,
  ) {}

  /** Contends for `epoch`: checks with the context of the moment, and hands each verdict on. */
  contend(epoch: number, context: () => WitnessContext, onVerdict: (v: WitnessVerdict, epoch: number) => void): void {
    this.#epoch = epoch;
    if (!this.#witness) this.#witness = this.make();
    const witness = this.#witness;
    const current = () => !this.#closed && this.#witness === witness && this.#epoch === epoch;
    const loop = async () => {
      while (current()) {
        const v = await witness.check(context());
        if (!current()) return;
        onVerdict(v, epoch);
        await new Promise((r) => this.clock.setTimeout(() => r(undefined), this.periodMs));
      }
    };
    void loop().catch((e: unknown) => this.log.error({ event: 'mirror_witness_error', module: this.module, err: (e as Error).message }, `witness: ${(e as Error).message}`));
  }

  /** Stops contending (a redis lease held is released). */
  async stop(): Promise<void> {
    const w = this.#witness;
    this.#witness = null;
    this.#epoch = -1;
    if (w) await w.close();
  }

  /** No more checks, ever (the runtime closes). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.stop();
  }
}
