// croft daemon --config DIR [--node NAME]: run this node's daemon in the foreground, logs in JSON on stdout.
import { buildApi } from '../api/app.js';
import { loadConfig } from '../config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { localAddresses, resolveSelf } from '../daemon/identity.js';
import { CroftError } from '../errors.js';
import { createLogger } from '../log/logger.js';
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

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'signal', signal }, `${signal}: stopping modules and leaving the cluster`);
      void (async () => {
        await app.close();
        await daemon.stop(`daemon received ${signal}`);
        resolve(0);
      })();
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });
}
