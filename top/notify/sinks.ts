// The three sinks of notify: (cluster.yaml, src/config/notify.ts). Each is a Deliver (queue.ts):
// it sends one event and throws when it did not arrive.
//
// - webhook: a JSON POST of the event; any 2xx is a delivery, anything else (refused, timeout,
//   3xx/4xx/5xx) a failure that the queue retries with backoff.
// - exec: keepalived's notify, without its shell: the program runs with the event as arguments
//   (`<kind> <module|-> <from|-> <to|->`) and environment (CROFT_EVENT_*), killed past its timeout,
//   in its own process group (and PID namespace without cgroup v2: nothing is left behind). Before
//   each run its file is checked as at config load (config/perms.ts): a program made writable by
//   group or others since, or owned by another user, is refused, not run as root.
// - syslog: RFC 3164 to the local socket (/dev/log) by default, what a Debian administrator
//   finds in journalctl and /var/log/syslog; or UDP to a collector (RFC 5424 by default). Node has
//   no unix datagram socket, so the local socket is written by logger(1) (util-linux's, in bsdutils,
//   which Debian marks Essential: present on every installation), given the message as an argument,
//   never through a shell.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import type { ExecHookConfig, SyslogConfig, WebhookConfig } from '../../src/config/notify.js';
import { diskFiles } from '../../src/config/load.js';
import { trustedFileProblems } from '../../src/config/perms.js';
import { runScript } from '../../src/module/scripts.js';
import type { Logger } from '../../src/log/logger.js';
import { describeEvent, type NotifyEvent } from './event.js';
import type { Deliver } from './queue.js';

export function webhookDeliver(cfg: WebhookConfig): Deliver {
  const url = new URL(cfg.url);
  const lib = url.protocol === 'https:' ? https : http;
  return (e) => new Promise<void>((resolve, reject) => {
    const body = Buffer.from(JSON.stringify(e), 'utf8');
    const req = lib.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': body.length, 'user-agent': 'croft-notify', 'x-croft-event': e.kind },
      timeout: cfg.timeoutMs,
    }, (res) => {
      res.resume(); // the answer's body is not needed: read and discarded, never held
      const code = res.statusCode ?? 0;
      if (code >= 200 && code < 300) resolve();
      else reject(new Error(`${url.origin} answered HTTP ${code}`));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${cfg.timeoutMs} ms`)));
    req.on('error', (err) => reject(new Error(`POST ${url.origin}: ${err.message}`)));
    req.end(body);
  });
}

/** The exec hook's environment: the event's fields, one variable each, and the whole as JSON. */
export function eventEnv(e: NotifyEvent): Record<string, string> {
  const clean = (s: string) => s.replace(/\0/g, ''); // an environment string cannot hold NUL
  return {
    CROFT_CLUSTER: clean(e.cluster),
    CROFT_NODE: clean(e.node),
    CROFT_EVENT_KIND: e.kind,
    CROFT_EVENT_MODULE: clean(e.module ?? ''),
    CROFT_EVENT_FROM: clean(e.from ?? ''),
    CROFT_EVENT_TO: clean(e.to ?? ''),
    CROFT_EVENT_CAUSE: clean(e.cause),
    CROFT_EVENT_TIME: e.time,
    CROFT_EVENT_SEQUENCE: String(e.sequence),
    CROFT_EVENT_INCARNATION: String(e.incarnation),
    ...(e.checker ? { CROFT_EVENT_CHECKER: clean(e.checker) } : {}),
    CROFT_EVENT_SUPPRESSED: e.suppressed ? '1' : '0',
    CROFT_EVENT_JSON: clean(JSON.stringify(e)),
  };
}

export function execDeliver(cfg: ExecHookConfig, log?: Logger): Deliver {
  return async (e) => {
    const problems = trustedFileProblems(cfg.program, diskFiles, 'the notify program');
    if (problems.length > 0) throw new Error(`refused to run: ${problems.join('; ')}`);
    const r = await runScript({
      path: cfg.program,
      args: [e.kind, e.module ?? '-', e.from ?? '-', e.to ?? '-'],
      env: eventEnv(e),
      timeoutMs: cfg.timeoutMs,
      killGraceMs: cfg.killGraceMs,
      isolated: true,
      onOutput: (stream, line) => log?.info({ event: 'notify_exec_output', sequence: e.sequence, stream }, line),
    });
    if (r.ok) return;
    if (r.timedOut) throw new Error(`${cfg.program} ran past ${cfg.timeoutMs} ms and was killed`);
    throw new Error(`${cfg.program} ${r.error ?? `exited with ${r.exitCode ?? r.signal}`}`);
  };
}

const FACILITY: Record<SyslogConfig['facility'], number> = {
  user: 1, daemon: 3, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

/** warning (4) for what an administrator must look at, notice (5) for the rest. */
export function syslogSeverity(e: NotifyEvent): 4 | 5 {
  const bad = e.kind === 'failover' || e.kind === 'split_brain' || e.kind === 'config_mismatch'
    || (e.kind === 'checker' && e.to === 'failed') || (e.kind === 'state' && e.to === 'STOP' && !e.cause.startsWith('command'));
  return bad ? 4 : 5;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The message: the line for people, then the record as JSON for programs. */
export function syslogText(e: NotifyEvent): string {
  return `${describeEvent(e)} ${JSON.stringify({ ...e, cause: e.cause.slice(0, 512) })}`;
}

/** One syslog datagram, RFC 3164 or RFC 5424 (APP-NAME croft, MSGID the event's kind, no structured data). */
export function formatSyslog(e: NotifyEvent, format: SyslogConfig['format'], facility: SyslogConfig['facility'], host = os.hostname(), pid = process.pid): string {
  const pri = FACILITY[facility] * 8 + syslogSeverity(e);
  const t = new Date(e.time);
  if (format === 'rfc5424') return `<${pri}>1 ${t.toISOString()} ${host || '-'} croft ${pid} ${e.kind} - ${syslogText(e)}`;
  // RFC 3164's timestamp is local time without a year: "Dec  7 08:01:02".
  const stamp = `${MONTHS[t.getMonth()]} ${String(t.getDate()).padStart(2, ' ')} ${[t.getHours(), t.getMinutes(), t.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')}`;
  return `<${pri}>${stamp} ${host.split('.')[0] || '-'} croft[${pid}]: ${syslogText(e)}`;
}

const SEVERITY_NAME = { 4: 'warning', 5: 'notice' } as const;

export function syslogDeliver(cfg: SyslogConfig, loggerPath = 'logger'): Deliver {
  const target = cfg.target;
  if (target.type === 'udp') {
    const family = net.isIPv6(target.host) ? 'udp6' : 'udp4';
    return (e) => new Promise<void>((resolve, reject) => {
      const sock = dgram.createSocket(family);
      const msg = Buffer.from(formatSyslog(e, cfg.format, cfg.facility), 'utf8');
      sock.once('error', (err) => { sock.close(); reject(new Error(`syslog udp://${target.host}:${target.port}: ${err.message}`)); });
      sock.send(msg, target.port, target.host, (err) => {
        sock.close();
        if (err) reject(new Error(`syslog udp://${target.host}:${target.port}: ${err.message}`));
        else resolve();
      });
    });
  }
  return (e) => new Promise<void>((resolve, reject) => {
    const argv = ['--socket', target.path, '--socket-errors=on', `--${cfg.format}`, '--tag', 'croft', `--id=${process.pid}`,
      '--priority', `${cfg.facility}.${SEVERITY_NAME[syslogSeverity(e)]}`, '--', syslogText(e)];
    const child = spawn(loggerPath, argv, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => { if (err.length < 1000) err += c.toString('utf8'); });
    child.once('error', (x) => reject(new Error(`cannot run ${loggerPath} (util-linux) for syslog: ${x.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`logger to ${target.path} failed (${code ?? signal}): ${err.trim().slice(0, 300)}`));
    });
  });
}
