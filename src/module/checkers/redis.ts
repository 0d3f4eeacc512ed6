// redis checker: healthy when the server answers PING with PONG within the checker's timeout.
// Any error reply (LOADING while it reads its data, MASTERDOWN on a replica cut from its master,
// NOAUTH/WRONGPASS for a bad password...) is a failure, with the reply in the detail.
//
// One short-lived connection per probe (connect, AUTH/SELECT when configured, PING, close): at a
// probe a second this costs the server nothing, and each probe then also shows that the server
// still accepts new connections (one stuck at maxclients, or whose accept queue is full, fails
// here while a kept connection would go on answering), and there is no state to rebuild after an
// error. The client is ioredis, bounded like the split-brain witness: no offline queue, no retries,
// no reconnection, so that when the runner aborts the probe nothing of it is left running.
// ioredis is loaded at the first probe, not with the daemon: most configurations have no redis
// checker, and loading it costs every daemon ~15 MB of RSS (bench/farm/REPORT.md, idle).
import type { Redis as RedisClient } from 'ioredis';
import { reasonOf, type Probe } from './probe.js';

export interface RedisProbeConfig {
  host: string;
  port: number;
  password?: string;
  db?: number;
  /** The checker's timeout: bounds connecting and the PING even if the runner's abort came late. */
  timeoutMs: number;
}

export function redisProbe(cfg: RedisProbeConfig): Probe {
  const where = `${cfg.host}:${cfg.port}`;
  return async (signal) => {
    const { Redis } = await import('ioredis');
    return new Promise((resolve) => {
      if (signal.aborted) return resolve({ ok: false, detail: `timeout: no PONG from ${where}` });
      const client: RedisClient = new Redis({
        host: cfg.host,
        port: cfg.port,
        ...(cfg.password !== undefined ? { password: cfg.password } : {}),
        ...(cfg.db !== undefined ? { db: cfg.db } : {}),
        lazyConnect: true,
        connectTimeout: cfg.timeoutMs,
        commandTimeout: cfg.timeoutMs,
        // After disconnect() ioredis waits this long for the server to close before destroying the
        // socket (its default, 2 s, would outlive the probe against a server that never answers).
        disconnectTimeout: cfg.timeoutMs,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        // The ready check (INFO, retried while Redis loads) would hide LOADING behind a wait: PING
        // itself answers -LOADING, which is what the user should see.
        enableReadyCheck: false,
        // No CLIENT SETINFO (ioredis reads its package.json for it at every connection): the probe
        // sends what it needs and nothing else.
        disableClientInfo: true,
      });
      // The first socket error says why (ioredis then rejects with "Connection is closed.").
      let failure: Error | null = null;
      let handshakeFailure: Error | null = null;
      client.on('error', (e: Error) => {
        // AUTH/SELECT error replies arrive as error events, not as our PING's reply; ioredis even
        // goes on after a failed SELECT (PING then answers PONG on db 0).
        if (e.name === 'ReplyError') handshakeFailure ??= e;
        else failure ??= e;
      });
      let settled = false;
      const done = (ok: boolean, detail: string) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        // A client already ended has no socket left; disconnect() would arm a timer nothing clears.
        if (client.status !== 'end') client.disconnect(false);
        resolve({ ok, detail });
      };
      const onAbort = () => done(false, `timeout: no PONG from ${where}`);
      signal.addEventListener('abort', onAbort, { once: true });
      client
        .connect()
        .then(() => client.ping())
        .then(
          (reply) => {
            // The handshake's replies came before PONG (replies are in order): a failed SELECT fails.
            if (handshakeFailure) done(false, `${where} answered ${handshakeFailure.message}`);
            else if (reply === 'PONG') done(true, `PONG from ${where}`);
            else done(false, `${where} answered PING with ${JSON.stringify(reply)}`);
          },
          (e: unknown) => {
            const why = handshakeFailure ?? failure ?? e;
            // An error reply is the server speaking: show it as it said it.
            if (why instanceof Error && why.name === 'ReplyError') done(false, `${where} answered ${why.message}`);
            else done(false, `${reasonOf(why)} ${where}`);
          },
        );
    });
  };
}
