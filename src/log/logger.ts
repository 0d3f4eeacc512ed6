// JSON logs (pino): one event per state change, with node, module, from, to and cause.
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  node?: string;
  cluster?: string;
  /** Default from CROFT_LOG_LEVEL, else 'info'. */
  level?: string;
  /** Where the JSON lines go (default stdout). */
  destination?: NodeJS.WritableStream;
}

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
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything (for tests of pure code that want one). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
