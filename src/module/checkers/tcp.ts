// tcp checker: healthy when a TCP connection to host:port is accepted within the timeout.
import net from 'node:net';
import type { Probe } from './probe.js';

export function tcpProbe(cfg: { host: string; port: number }): Probe {
  return (signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve({ ok: false, detail: 'timeout' });
      const socket = net.connect({ host: cfg.host, port: cfg.port });
      const done = (ok: boolean, detail: string) => {
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        resolve({ ok, detail });
      };
      const onAbort = () => done(false, `timeout connecting to ${cfg.host}:${cfg.port}`);
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => done(true, `connected to ${cfg.host}:${cfg.port}`));
      socket.once('error', (err: NodeJS.ErrnoException) => done(false, `${err.code ?? err.message} ${cfg.host}:${cfg.port}`));
    });
}
