// croft daemon --config DIR [--node NAME]: run this node's daemon in the foreground, logs in JSON on stdout.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/app.js';
import { loadConfig } from '../config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { localAddresses, resolveSelf } from '../daemon/identity.js';
import { CroftError } from '../errors.js';
import { createLogger, type Logger } from '../log/logger.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { defaultConfigDir } from './client.js';

export async function daemonCommand(argv: string[], _out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'node']);
  rejectUnknown(args, ['config', 'node']);
  if (args.positionals.length) throw new CroftError('CROFT_ERR_USAGE', 'usage: croft daemon [--config DIR] [--node NAME]');
  const config = loadConfig(flagString(args, 'config') ?? defaultConfigDir);
  const self = resolveSelf(config.cluster, flagString(args, 'node'), localAddresses());
  const log = createLogger({ node: self, cluster: config.cluster.name });
  const daemon = new Daemon(config, self, log);
  const app = buildApi(daemon, { logger: log.child({ layer: 'api' }) });
  await daemon.start();
  const { host, port } = config.cluster.api;
  try {
    await app.listen({ host, port });
  } catch (err) {
    await daemon.stop('API cannot listen');
    throw new CroftError('CROFT_ERR_BIND', `cannot listen on ${host}:${port} for the API: ${(err as Error).message}`);
  }
  log.info({ event: 'api_listen', host, port, tls: Boolean(config.cluster.api.tls) }, `API on ${host}:${port}`);
  const local = await listenLocal(daemon, config.cluster.api.socket, log);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'signal', signal }, `${signal}: stopping modules and leaving the cluster`);
      void (async () => {
        await app.close();
        await local?.close();
        await daemon.stop(`daemon received ${signal}`);
        resolve(0);
      })();
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });
}

/** The local API socket (no token needed: only root can open it). A failure here is logged, not fatal. */
async function listenLocal(daemon: Daemon, socketPath: string, log: Logger): Promise<FastifyInstance | null> {
  try {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    fs.rmSync(socketPath, { force: true });
    const local = buildApi(daemon, { local: true, logger: log.child({ layer: 'api-local' }) });
    await local.listen({ path: socketPath });
    fs.chmodSync(socketPath, 0o600);
    log.info({ event: 'api_listen', socket: socketPath }, `local API on ${socketPath}`);
    return local;
  } catch (err) {
    log.warn({ event: 'api_listen_failed', socket: socketPath, err: (err as Error).message }, 'no local API socket');
    return null;
  }
}
