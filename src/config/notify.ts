// The `notify:` section of cluster.yaml: where this node sends its events (module state changes,
// checker failures, failovers, split brain, reintegration done, config mismatch, maintenance): a
// webhook, an exec hook, syslog. Its schema, the checks the schema cannot express (the hook
// program exists, is executable and trusted like a module script: config/perms.ts; the syslog
// target), and the conversion with its defaults. The sinks themselves are in top/notify/.
//
// One section for the whole node, not per module: one receiver per cluster is what keepalived's
// notify and Pacemaker's alerts have too, and a receiver filters on the event's `module` field.
import path from 'node:path';
import type { FileAccess } from './files.js';
import { trustedFileProblems } from './perms.js';
import type { ConfigProblem } from './problems.js';
import { obj, str } from './raw.js';
import { intSchema, ms, type JsonSchema } from './schema-parts.js';
import type { Source } from './source.js';

/** What an event is about (the `kind` of every event record). */
export const notifyKinds = [
  'state', 'failover', 'reintegration_done', 'split_brain', 'checker', 'maintenance', 'config_mismatch', 'peer',
  'verify_diverged',
] as const;
export type NotifyKind = (typeof notifyKinds)[number];

export const syslogFacilities = ['user', 'daemon', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'] as const;

export interface NotifyConfig {
  /** Kinds sent to the sinks (the history keeps every kind). Default: all. */
  events: NotifyKind[];
  /** Events kept in memory for GET /api/v1/events. Default 1000. */
  history: number;
  webhook?: WebhookConfig;
  exec?: ExecHookConfig;
  syslog?: SyslogConfig;
}

export interface WebhookConfig {
  url: string;
  /** One POST taking longer than this is a failure (retried). Default 5000. */
  timeoutMs: number;
  /** Attempts after the first one failed. Default 5. */
  retries: number;
  /** Wait before the first retry, doubled at each one, at most maxBackoffMs. Default 1000 / 60000. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Events waiting at most; past it the oldest is dropped (counted, logged). Default 1000. */
  queue: number;
}

export interface ExecHookConfig {
  /** Absolute path (a relative one in the file is resolved against the config directory). */
  program: string;
  /** Killed (SIGTERM, then SIGKILL after killGraceMs) past this. Default 10000 / 1000. */
  timeoutMs: number;
  killGraceMs: number;
  queue: number;
}

export interface SyslogConfig {
  /** `/dev/log` (the local syslog socket: journald or rsyslog), or a UDP collector. */
  target: { type: 'unix'; path: string } | { type: 'udp'; host: string; port: number };
  /** Default rfc3164 on the local socket (what journald and rsyslog parse there), rfc5424 over UDP. */
  format: 'rfc3164' | 'rfc5424';
  facility: (typeof syslogFacilities)[number];
  queue: number;
}

export const notifyDefaults = {
  history: 1000,
  webhook: { timeoutMs: 5000, retries: 5, backoffMs: 1000, maxBackoffMs: 60_000 },
  exec: { timeoutMs: 10_000, killGraceMs: 1000 },
  syslog: { target: '/dev/log', facility: 'daemon' as const },
  queue: 1000,
};

const queue = intSchema(1, 100_000);

export const notifySchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    events: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', enum: [...notifyKinds] },
      expect: `a list of event kinds (${notifyKinds.join(', ')})`,
    },
    history: intSchema(10, 100_000),
    webhook: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', check: 'http-url', expect: 'an http:// or https:// URL' },
        timeout_ms: ms(100, 600_000),
        retries: intSchema(0, 100),
        backoff_ms: ms(10, 3_600_000),
        max_backoff_ms: ms(10, 86_400_000),
        queue,
      },
    },
    exec: {
      type: 'object',
      additionalProperties: false,
      required: ['program'],
      properties: {
        program: { type: 'string', minLength: 1, expect: 'a program path (relative to the config directory)' },
        timeout_ms: ms(100, 600_000),
        kill_grace_ms: ms(0, 60_000),
        queue,
      },
    },
    syslog: {
      type: 'object',
      additionalProperties: false,
      properties: {
        target: { type: 'string', pattern: '^(/|udp://)', expect: 'a unix socket path (/dev/log) or udp://host:port' },
        format: { type: 'string', enum: ['rfc3164', 'rfc5424'] },
        facility: { type: 'string', enum: [...syslogFacilities] },
        queue,
      },
    },
  },
};

/** udp://host:port (IPv6 in brackets) → host and port, or a reason. */
export function parseUdpTarget(target: string): { host: string; port: number } | string {
  const m = /^udp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(target);
  if (!m) return 'expected udp://host:port (e.g. udp://10.0.0.9:514)';
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port ${port} is not from 1 to 65535`;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Checks of `notify:` the schema cannot express. Reads the raw data defensively. */
export function checkNotify(source: Source, dir: string, files: FileAccess): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const n = obj(obj(source.data)?.notify);
  if (!n) return problems;
  const program = str(obj(n.exec)?.program);
  if (program !== undefined && program !== '') {
    const file = path.resolve(dir, program);
    const st = files.stat(file);
    const at = ['notify', 'exec', 'program'];
    if (!st) problems.push(source.problem(at, `program not found: ${file}`));
    else if (!st.isFile) problems.push(source.problem(at, `not a regular file: ${file}`));
    else if (!st.executable) problems.push(source.problem(at, `program is not executable: ${file} (chmod +x it)`));
    else for (const m of trustedFileProblems(file, files, 'the notify program')) problems.push(source.problem(at, m));
  }
  const s = obj(n.syslog);
  const target = str(s?.target);
  if (target?.startsWith('udp://')) {
    const r = parseUdpTarget(target);
    if (typeof r === 'string') problems.push(source.problem(['notify', 'syslog', 'target'], r));
  }
  const w = obj(n.webhook);
  if (typeof w?.backoff_ms === 'number' && typeof w.max_backoff_ms === 'number' && w.max_backoff_ms < w.backoff_ms) {
    problems.push(source.problem(['notify', 'webhook', 'max_backoff_ms'], `max_backoff_ms (${w.max_backoff_ms}) is below backoff_ms (${w.backoff_ms}); expected at least backoff_ms`));
  }
  return problems;
}

/** The program the exec hook runs (for the folder checks of config/check.ts), or undefined. */
export function notifyProgram(data: unknown, dir: string): string | undefined {
  const p = str(obj(obj(obj(data)?.notify)?.exec)?.program);
  return p === undefined || p === '' ? undefined : path.resolve(dir, p);
}

// The data has passed the schema and checkNotify: `any` only spares re-checking the shapes.
type Raw = Record<string, any>;

export function toNotifyConfig(raw: Raw | undefined, dir: string): NotifyConfig {
  const n: Raw = raw ?? {};
  const out: NotifyConfig = { events: [...(n.events ?? notifyKinds)], history: n.history ?? notifyDefaults.history };
  if (n.webhook) {
    const w: Raw = n.webhook;
    out.webhook = {
      url: w.url,
      timeoutMs: w.timeout_ms ?? notifyDefaults.webhook.timeoutMs,
      retries: w.retries ?? notifyDefaults.webhook.retries,
      backoffMs: w.backoff_ms ?? notifyDefaults.webhook.backoffMs,
      maxBackoffMs: w.max_backoff_ms ?? Math.max(notifyDefaults.webhook.maxBackoffMs, w.backoff_ms ?? 0),
      queue: w.queue ?? notifyDefaults.queue,
    };
  }
  if (n.exec) {
    const e: Raw = n.exec;
    out.exec = {
      program: path.resolve(dir, e.program),
      timeoutMs: e.timeout_ms ?? notifyDefaults.exec.timeoutMs,
      killGraceMs: e.kill_grace_ms ?? notifyDefaults.exec.killGraceMs,
      queue: e.queue ?? notifyDefaults.queue,
    };
  }
  if (n.syslog) {
    const s: Raw = n.syslog;
    const target: string = s.target ?? notifyDefaults.syslog.target;
    const udp = target.startsWith('udp://') ? parseUdpTarget(target) : null;
    out.syslog = {
      target: udp !== null && typeof udp !== 'string' ? { type: 'udp', ...udp } : { type: 'unix', path: target },
      format: s.format ?? (udp ? 'rfc5424' : 'rfc3164'),
      facility: s.facility ?? notifyDefaults.syslog.facility,
      queue: s.queue ?? notifyDefaults.queue,
    };
  }
  return out;
}
