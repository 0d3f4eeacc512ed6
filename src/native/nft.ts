// nftables from the daemon's own process (crates/croft-napi/src/nft.rs): libnftables over one
// netlink socket held as long as the session is open. Tables created through it with `flags owner`
// are deleted by the kernel when the socket closes, i.e. when this process ends, however it ends.
import { loadNative, nativeError, type NativeNftSession } from './load.js';

/** One command text's outcome, in the shape of a finished `nft` process (src/net/command.ts Ran). */
export interface NftSessionRun {
  /** 0: the whole transaction was applied; otherwise none of it was. */
  code: number;
  stdout: string;
  /** nft's error messages, with the command line they point at. */
  stderr: string;
}

export class NftSession {
  readonly #native: NativeNftSession;
  #closed = false;

  /** Opens the session in this process's network namespace. Throws CROFT_ERR_NATIVE without libnftables. */
  constructor() {
    const binding = loadNative();
    try {
      this.#native = new binding.NftSession();
    } catch (err) {
      throw nativeError('cannot open an nftables session', err);
    }
  }

  /** Runs `commands` as `nft -f -` would (as `nft -j` with json); never on the JS thread. */
  async run(commands: string, opts: { json?: boolean } = {}): Promise<NftSessionRun> {
    if (this.#closed) throw nativeError('nft', new Error('the nftables session is closed'));
    try {
      const r = await this.#native.run(commands, opts.json ?? false);
      return { code: r.code, stdout: r.output, stderr: r.error };
    } catch (err) {
      throw nativeError('nft', err);
    }
  }

  /** Closes the socket: the kernel deletes the tables it owns. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#native.close();
  }

  get closed(): boolean {
    return this.#closed;
  }
}
