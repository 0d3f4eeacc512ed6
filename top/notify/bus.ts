// The node's one event bus: the daemon publishes here every module state change, checker verdict,
// failover, split brain, end of reintegration, maintenance change and configuration mismatch
// (top/daemon/events.ts says where each comes from). The bus numbers and stamps each event, keeps
// the last `history` of them in memory (GET /api/v1/events, the console's timeline), tells its
// listeners, and hands each to the configured sinks (webhook, exec hook, syslog), each behind its
// own bounded queue (queue.ts). publish() is synchronous and never waits for a sink.
import { EventEmitter } from 'node:events';
import type { NotifyConfig } from '../../src/config/notify.js';
import type { Logger } from '../../src/log/logger.js';
import type { EventInput, NotifyEvent } from './event.js';
import { SinkQueue, type Deliver, type RetryPolicy, type SinkCounters } from './queue.js';
import { execDeliver, syslogDeliver, webhookDeliver } from './sinks.js';

export interface EventFilter {
  module?: string;
  node?: string;
  kind?: string;
  /** Only events whose sequence is above this. */
  since?: number;
  /** The newest `limit` of those (default all kept). */
  limit?: number;
}

export interface SinkSpec {
  name: string;
  deliver: Deliver;
  queue: number;
  retry: RetryPolicy;
}

const NO_RETRY: RetryPolicy = { retries: 0, backoffMs: 0, maxBackoffMs: 0 };

/** The sinks of a notify: section. The exec hook is not retried: it may have done half of its work. */
export function sinksOf(cfg: NotifyConfig, log?: Logger): SinkSpec[] {
  const out: SinkSpec[] = [];
  if (cfg.webhook) {
    const w = cfg.webhook;
    out.push({ name: 'webhook', deliver: webhookDeliver(w), queue: w.queue, retry: { retries: w.retries, backoffMs: w.backoffMs, maxBackoffMs: w.maxBackoffMs } });
  }
  if (cfg.exec) out.push({ name: 'exec', deliver: execDeliver(cfg.exec, log), queue: cfg.exec.queue, retry: NO_RETRY });
  if (cfg.syslog) out.push({ name: 'syslog', deliver: syslogDeliver(cfg.syslog), queue: cfg.syslog.queue, retry: { retries: 2, backoffMs: 500, maxBackoffMs: 2000 } });
  return out;
}

export interface EventBusOptions {
  cluster: string;
  node: string;
  incarnation: () => number;
  config: NotifyConfig;
  log?: Logger;
  /** Default: the sinks of `config` (tests give their own). */
  sinks?: SinkSpec[];
  now?: () => Date;
}

export class EventBus extends EventEmitter {
  #sequence = 0;
  readonly #history: NotifyEvent[] = [];
  readonly #max: number;
  readonly #kinds: Set<string>;
  readonly #queues: SinkQueue[];
  readonly #opts: EventBusOptions;

  constructor(opts: EventBusOptions) {
    super();
    this.#opts = opts;
    this.#max = opts.config.history;
    this.#kinds = new Set(opts.config.events);
    const log = opts.log?.child({ layer: 'notify' });
    this.#queues = (opts.sinks ?? sinksOf(opts.config, log)).map((s) => new SinkQueue(s.name, s.deliver, s.queue, s.retry, log));
  }

  publish(input: EventInput): NotifyEvent {
    const e: NotifyEvent = {
      sequence: ++this.#sequence,
      time: (this.#opts.now?.() ?? new Date()).toISOString(),
      cluster: this.#opts.cluster,
      node: this.#opts.node,
      incarnation: this.#opts.incarnation(),
      ...input,
    };
    this.#history.push(e);
    if (this.#history.length > this.#max) this.#history.splice(0, this.#history.length - this.#max);
    if (this.#kinds.has(e.kind)) for (const q of this.#queues) q.push(e);
    this.emit('event', e);
    return e;
  }

  /** Events kept in memory, oldest first. */
  events(f: EventFilter = {}): NotifyEvent[] {
    const out = this.#history.filter((e) => (f.module === undefined || e.module === f.module)
      && (f.node === undefined || e.node === f.node)
      && (f.kind === undefined || e.kind === f.kind)
      && (f.since === undefined || e.sequence > f.since));
    return f.limit !== undefined && out.length > f.limit ? out.slice(out.length - f.limit) : out;
  }

  /** The last sequence given (0 before the first event). */
  get sequence(): number {
    return this.#sequence;
  }

  counters(): Record<string, SinkCounters> {
    const out: Record<string, SinkCounters> = {};
    for (const q of this.#queues) out[q.name] = { ...q.counters, queued: q.queued };
    return out;
  }

  /** At daemon stop: the sinks get up to graceMs to send what waits. */
  async close(graceMs: number): Promise<void> {
    await Promise.all(this.#queues.map((q) => q.close(graceMs)));
  }
}
