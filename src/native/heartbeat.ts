// The heartbeat pump (crates/croft-net/src/heartbeat.rs): native threads that send the frames the
// membership driver encoded for the next intervals, on time whatever the JS thread does, and that
// stamp received datagrams with their arrival time. It decides nothing: every datagram still goes
// through the codec and the membership core, except the quiet ones (crates/croft-net/src/quiet.rs):
// with the cluster key, a datagram that repeats the heartbeat the core last accepted from its
// source (`learn`), with a larger seq and a valid MAC, is noted (`heard`) instead of queued.
import { CroftError } from '../errors.js';
import { loadNative, nativeError } from './load.js';

export interface HeartbeatLan {
  /** This node's address on the LAN. */
  address: string;
  port: number;
  /** The peers' addresses on that LAN (same port). */
  peers: string[];
}

export interface HeartbeatDatagram {
  lan: number;
  bytes: Buffer;
  source: string;
  /** How long before the drain it arrived (ms). */
  ageMs: number;
}

/** Quiet heartbeats of one (LAN, source) since the last `heard()`. */
export interface HeartbeatHeard {
  lan: number;
  source: string;
  /** The last one's seq. */
  seq: number;
  /** How long before the call it arrived (ms). */
  ageMs: number;
  count: number;
}

export interface HeartbeatPumpStats {
  /** Datagrams sent, per LAN. */
  sent: number[];
  /** Datagrams received, per LAN (before any check). */
  received: number[];
  sendErrors: number;
  /** Received datagrams dropped because the inbox was full (JS did not read it in time). */
  inboxDropped: number;
  /** Intervals with no frame left to send (JS did not refresh the schedule in time). */
  underruns: number;
}

interface NativePump {
  onWake(callback: (lan: number) => void): void;
  schedule(sets: Buffer[][][]): void;
  scheduleFrom(set: Buffer[][], seq: number, first: number, count: number): boolean;
  sendNow(frames: Buffer[][]): void;
  drain(): HeartbeatDatagram[];
  learn(lan: number, source: string, frame: Buffer, seq: number, ageMs: number): boolean;
  watch?(timeoutMs: number | null): boolean;
  forget(source: string): void;
  heard(): HeartbeatHeard[];
  stats(): HeartbeatPumpStats;
  close(): void;
}

type PumpClass = new (lans: HeartbeatLan[], intervalMs: number, quietKey?: Buffer) => NativePump;

export class HeartbeatPump {
  readonly #native: NativePump;
  #closed = false;
  #last: HeartbeatPumpStats;

  /** Binds one socket per LAN; throws CROFT_ERR_BIND when one cannot be bound. With the cluster key, the quiet path. */
  constructor(lans: HeartbeatLan[], intervalMs: number, onWake: () => void, quietKey?: Buffer) {
    const Pump = (loadNative() as unknown as { HeartbeatPump: PumpClass }).HeartbeatPump;
    try {
      this.#native = quietKey ? new Pump(lans, intervalMs, quietKey) : new Pump(lans, intervalMs);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message.startsWith('CROFT_ERR_BIND: ')) {
        throw new CroftError('CROFT_ERR_BIND', message.slice('CROFT_ERR_BIND: '.length), { cause: err });
      }
      throw nativeError('cannot start the heartbeat pump', err);
    }
    this.#native.onWake(() => onWake());
    this.#last = this.#native.stats();
  }

  /**
   * `sets[k][lan]` goes out at the k-th next interval; replaces what was left. Per LAN, one frame
   * goes to every peer, or one frame per peer (in the order of HeartbeatLan.peers).
   */
  schedule(sets: Buffer[][][]): void {
    if (!this.#closed) this.#native.schedule(sets);
  }

  /**
   * The next `count` intervals from one set encoded with sequence number `seq`: interval k sends
   * it with sequence number `first + k`, re-signed by the pump. False (nothing scheduled) when the
   * pump has no cluster key (no quiet path) or a frame does not carry that seq once: schedule().
   */
  scheduleFrom(set: Buffer[][], seq: number, first: number, count: number): boolean {
    return this.#closed ? false : this.#native.scheduleFrom(set, seq, first, count);
  }

  /** `frames[lan]` now (one for every peer of the LAN, or one per peer). */
  sendNow(frames: Buffer[][]): void {
    if (!this.#closed) this.#native.sendNow(frames);
  }

  drain(): HeartbeatDatagram[] {
    return this.#closed ? [] : this.#native.drain();
  }

  /**
   * The core accepted `frame` (seq `seq`, arrived `ageMs` ago) from `source` on `lan`: its repeats
   * are quiet, and the pump watches the source's silence (watch). False: nothing learned.
   */
  learn(lan: number, source: string, frame: Buffer, seq: number, ageMs: number): boolean {
    return this.#closed ? false : this.#native.learn(lan, source, frame, seq, Math.max(0, ageMs));
  }

  /**
   * The pump wakes onWake when a learned source has been silent for `timeoutMs` (counting only
   * authenticated arrivals), once per silence; null: no watching. False when it cannot (no quiet
   * path, or an addon without it): the caller then keeps every deadline itself.
   */
  watch(timeoutMs: number | null): boolean {
    if (this.#closed || typeof this.#native.watch !== 'function') return false;
    return this.#native.watch(timeoutMs);
  }

  /** Every datagram of `source` is queued again. */
  forget(source: string): void {
    if (!this.#closed) this.#native.forget(source);
  }

  /** The quiet heartbeats since the last call, per (LAN, source). */
  heard(): HeartbeatHeard[] {
    return this.#closed ? [] : this.#native.heard();
  }

  stats(): HeartbeatPumpStats {
    if (!this.#closed) this.#last = this.#native.stats();
    return this.#last;
  }

  close(): void {
    if (this.#closed) return;
    this.#last = this.#native.stats();
    this.#closed = true;
    this.#native.close();
  }
}
