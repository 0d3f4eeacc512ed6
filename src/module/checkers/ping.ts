// ping checker: healthy when one ICMP echo to host is answered (`ping -c1 -W<s>`, the system's
// ping, which has the capability to open raw sockets that node lacks).
import { spawn } from 'node:child_process';
import type { Probe } from './probe.js';

export function pingProbe(cfg: { host: string; timeoutMs: number }): Probe {
  // -W takes whole seconds; the runner's abort enforces the exact timeout.
  const waitS = Math.max(1, Math.ceil(cfg.timeoutMs / 1000));
  return (signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve({ ok: false, detail: 'timeout' });
      const child = spawn('ping', ['-n', '-c1', `-W${waitS}`, cfg.host], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (s: string) => {
        if (stderr.length < 512) stderr += s;
      });
      let settled = false;
      const done = (ok: boolean, detail: string) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve({ ok, detail });
      };
      const onAbort = () => {
        child.kill('SIGKILL');
        done(false, `timeout pinging ${cfg.host}`);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (err) => done(false, `cannot run ping: ${err.message}`));
      child.once('close', (code) => {
        if (code === 0) done(true, `${cfg.host} answered`);
        else done(false, `${cfg.host} did not answer${stderr ? `: ${stderr.trim().split('\n')[0]}` : ''}`);
      });
    });
}
