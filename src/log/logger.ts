// JSON logs (pino): one event per state change, with node, module, from, to and cause.
//
// Bounded: pino writes every line to a BoundedSink, never to an unbounded buffer. Past
// maxBufferedBytes not yet taken by the destination (a slow disk, a stuck pipe or journald), or
// past maxLinesPerSecond, a record is dropped and counted (logDropped(): croft_log_dropped_total);
// the first record written after drops is preceded by one line saying how many were dropped. So a
// flood (a script's output, a storm of events) costs a bounded amount of memory whatever the
// destination does.
//
// Never stuck: on a pipe or a socket, stdout is written through a non-blocking libuv stream (a
// blocking write(2) on a full pipe would hold a thread, and pino's exit-time flushSync would wait
// for it forever). flushLogs() waits for the buffered lines up to a deadline; the daemon exits
// after it whatever the destination does (top/cli/daemon.ts).
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogLimits {
  /** Bytes handed to the destination and not yet written by it; past this, records are dropped. */
  maxBufferedBytes: number;
  /** Records per second (a one-second window); past this, records are dropped. */
  maxLinesPerSecond: number;
}

export const defaultLogLimits: LogLimits = {
  /** About 15,000 lines of ~280 bytes: room for any burst a person would read. */
  maxBufferedBytes: 4 * 1024 * 1024,
  /** Far above what croft logs in normal operation, far below what a flood writes. */
  maxLinesPerSecond: 10_000,
};

export type DropReason = 'buffer_full' | 'rate' | 'destination_error';
export type DropCounts = Record<DropReason, number>;

const zero = (): DropCounts => ({ buffer_full: 0, rate: 0, destination_error: 0 });
/** Every sink of the process (one daemon, one stdout): what /metrics shows. */
const processDrops = zero();

/** Records dropped by the loggers of this process, by reason (croft_log_dropped_total). */
export function logDropped(): Readonly<DropCounts> {
  return { ...processDrops };
}

/**
 * The last `max` lines written (each cut at `maxLineBytes`), for the web console's live tail of the
 * node's log: bounded whatever the log's rate. Emits 'line' for each line kept.
 */
export class LogRing extends EventEmitter {
  readonly #lines: string[] = [];
  constructor(readonly max = 500, readonly maxLineBytes = 4096) {
    super();
    this.setMaxListeners(0);
  }

  push(line: string): void {
    const l = line.endsWith('\n') ? line.slice(0, -1) : line;
    const kept = l.length > this.maxLineBytes ? `${l.slice(0, this.maxLineBytes)}…` : l;
    this.#lines.push(kept);
    if (this.#lines.length > this.max) this.#lines.splice(0, this.#lines.length - this.max);
    this.emit('line', kept);
  }

  /** The newest `n` lines, oldest first. */
  lines(n = this.max): string[] {
    return this.#lines.slice(Math.max(0, this.#lines.length - n));
  }
}

export class BoundedSink {
  readonly dropped = zero();
  /** What the console's log tail shows (only lines the destination was given). */
  readonly recent = new LogRing();
  private unreported = zero();
  private unreportedSince = '';
  private windowStart = -Infinity;
  private windowLines = 0;
  private broken: string | null = null;

  constructor(
    private readonly out: Writable,
    readonly limits: LogLimits,
    private readonly base: Record<string, string>,
    private readonly now: () => number = Date.now,
  ) {
    out.on('error', (err: Error) => {
      // EPIPE (the reader is gone) or any other: stop writing, count what is lost.
      this.broken = err.message;
    });
  }

  /** Called by pino with one serialized record (a JSON line). */
  write(line: string): void {
    const t = this.now();
    if (t - this.windowStart >= 1000) {
      this.windowStart = t;
      this.windowLines = 0;
    }
    if (this.broken !== null || this.out.destroyed) return this.drop('destination_error');
    if (this.windowLines >= this.limits.maxLinesPerSecond) return this.drop('rate');
    const bytes = Buffer.byteLength(line);
    const pending = this.unreportedTotal();
    const summary = pending > 0 ? this.summary(pending) : '';
    if (this.out.writableLength + bytes + summary.length > this.limits.maxBufferedBytes) return this.drop('buffer_full');
    if (summary) {
      this.out.write(summary);
      this.unreported = zero();
      this.windowLines++;
    }
    this.windowLines++;
    this.out.write(line);
    this.recent.push(line);
  }

  /** Bytes handed to the destination and not yet written. */
  bufferedBytes(): number {
    return this.out.writableLength;
  }

  /** pino's logger.flush(cb): waits (bounded, as at exit) for the buffered lines. */
  flush(cb?: (err?: Error) => void): void {
    void this.drain(2000).then(() => cb?.());
  }

  /** Resolves true once everything buffered is written, false at the deadline (or on a broken destination). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.out.writableLength > 0 && this.broken === null && !this.out.destroyed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.out.off('drain', done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 50));
        this.out.on('drain', done);
      });
    }
    return this.out.writableLength === 0;
  }

  private drop(reason: DropReason): void {
    if (this.unreportedTotal() === 0) this.unreportedSince = new Date(this.now()).toISOString();
    this.dropped[reason]++;
    this.unreported[reason]++;
    processDrops[reason]++;
  }

  private unreportedTotal(): number {
    return this.unreported.buffer_full + this.unreported.rate + this.unreported.destination_error;
  }

  private summary(n: number): string {
    const by = Object.entries(this.unreported).filter(([, v]) => v > 0).map(([k, v]) => `${v} ${k}`).join(', ');
    return `${JSON.stringify({
      level: 'warn', time: new Date(this.now()).toISOString(), ...this.base, event: 'log_dropped', dropped: n,
      reasons: { ...this.unreported }, since: this.unreportedSince,
      msg: `${n} log records dropped since ${this.unreportedSince} (${by}): the log destination was slower than the records `
        + `(limits: ${this.limits.maxBufferedBytes} bytes buffered, ${this.limits.maxLinesPerSecond} records a second)`,
    })}\n`;
  }
}

/** stdout as a stream that never blocks a thread (pipes and sockets through libuv, files through fs). */
function stdoutStream(): Writable {
  let st: fs.Stats | null = null;
  try {
    st = fs.fstatSync(1);
  } catch { /* closed stdout: the fs stream reports the error, the sink counts the drops */ }
  if (st && (st.isFIFO() || st.isSocket())) return new net.Socket({ fd: 1, readable: false, writable: true });
  return fs.createWriteStream('/dev/stdout', { fd: 1, autoClose: false });
}

export interface LoggerOptions {
  node?: string;
  cluster?: string;
  /** Default from CROFT_LOG_LEVEL, else 'info'. */
  level?: string;
  /** Where the JSON lines go (default stdout). */
  destination?: Writable;
  limits?: Partial<LogLimits>;
}

const sinks = new WeakMap<Logger, BoundedSink>();

export function createLogger(opts: LoggerOptions = {}): Logger {
  const base: Record<string, string> = {};
  if (opts.cluster) base.cluster = opts.cluster;
  if (opts.node) base.node = opts.node;
  const options = {
    level: opts.level ?? process.env.CROFT_LOG_LEVEL ?? 'info',
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const sink = new BoundedSink(opts.destination ?? stdoutStream(), { ...defaultLogLimits, ...opts.limits }, base);
  const logger = pino(options, sink);
  sinks.set(logger, sink);
  return logger;
}

/** The sink of a logger made by createLogger (its counters and buffered bytes). */
export function sinkOf(logger: Logger): BoundedSink | undefined {
  return sinks.get(logger);
}

/** Waits (at most timeoutMs) for the logger's buffered lines to be written; false when some were not. */
export async function flushLogs(logger: Logger, timeoutMs: number): Promise<boolean> {
  return (await sinks.get(logger)?.drain(timeoutMs)) ?? true;
}

/** A logger that drops everything (for tests of pure code that want one). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
