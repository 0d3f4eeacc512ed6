// croft daemon --config DIR [--node NAME]: run this node's daemon in the foreground, logs in JSON on stdout.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi, listenWarnings } from '../api/app.js';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { localAddresses, resolveSelf } from '../daemon/identity.js';
import { CroftError } from '../../src/errors.js';
import { createLogger, flushLogs, sinkOf } from '../../src/log/logger.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { defaultConfigDir } from './client.js';

/** How long the daemon waits at exit for its log lines to reach a slow destination. */
const LOG_FLUSH_MS = 2_000;

export async function daemonCommand(argv: string[], _out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'node']);
  rejectUnknown(args, ['config', 'node']);
  if (args.positionals.length) throw new CroftError('CROFT_ERR_USAGE', 'usage: croft daemon [--config DIR] [--node NAME]');
  const config = loadConfig(flagString(args, 'config') ?? defaultConfigDir);
  const self = resolveSelf(config.cluster, flagString(args, 'node'), localAddresses());
  // Before anything starts: a local socket that others could reach or replace is a refusal.
  prepareSocketDir(config.cluster.api.socket);
  const log = createLogger({ node: self, cluster: config.cluster.name });
  const daemon = new Daemon(config, self, log);
  const logTail = sinkOf(log)?.recent;
  const app = buildApi(daemon, { logger: log.child({ layer: 'api' }), logTail });
  const local = buildApi(daemon, { local: true, logger: log.child({ layer: 'api-local' }), logTail });
  // A daemon that cannot serve stops, and exits (code 1) whatever its stdout does.
  const fail = async (err: unknown): Promise<never> => {
    await flushLogs(log, LOG_FLUSH_MS);
    setTimeout(() => process.exit(1), 100).unref();
    throw err;
  };
  try {
    await daemon.start();
  } catch (err) {
    return fail(err);
  }
  const { host, port } = config.cluster.api;
  try {
    await app.listen({ host, port });
  } catch (err) {
    await daemon.stop('API cannot listen');
    return fail(new CroftError('CROFT_ERR_BIND', `cannot listen on ${host}:${port} for the API: ${(err as Error).message}`));
  }
  log.info({ event: 'api_listen', host, port, tls: Boolean(config.cluster.api.tls) }, `API on ${host}:${port}`);
  for (const w of listenWarnings(config.cluster.api)) log.warn({ event: 'api_insecure', host, port }, w);
  try {
    await listenLocal(local, config.cluster.api.socket);
  } catch (err) {
    await app.close();
    await daemon.stop('local API socket refused');
    return fail(err);
  }
  log.info({ event: 'api_listen', socket: config.cluster.api.socket }, `local API on ${config.cluster.api.socket}`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'signal', signal }, `${signal}: stopping modules and leaving the cluster`);
      void (async () => {
        await app.close();
        await local.close();
        await daemon.stop(`daemon received ${signal}`);
        // The log lines up to a deadline, then exit whatever the destination does: a stuck stdout
        // (a full pipe nobody reads) must not keep a stopped daemon alive.
        await flushLogs(log, LOG_FLUSH_MS);
        setTimeout(() => process.exit(0), 100).unref();
        resolve(0);
      })();
    };
    // SIGHUP: reload the config folder (as `croft reload`); a refusal is logged, nothing changes.
    process.on('SIGHUP', () => {
      if (stopping) return;
      log.info({ event: 'signal', signal: 'SIGHUP' }, 'SIGHUP: reloading the configuration');
      daemon.reloadFromDisk('daemon received SIGHUP').catch((err: unknown) => {
        const code = err instanceof CroftError ? err.code : 'CROFT_ERR_API';
        log.error({ event: 'reload_refused', code, error: (err as Error).message }, `reload refused, nothing changed: ${(err as Error).message}`);
      });
    });
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });
}

/**
 * The local socket's folder: created if missing, and refused unless it belongs to us (root) and
 * nobody else may write in it (else another user could put their own socket in its place). It is
 * not made 0700: the modules' servers (postgres, mysql...) keep their own files in /run/croft/<module>.
 * The socket itself is created 0600 (umask during listen, then checked), so only root connects.
 */
export function prepareSocketDir(socketPath: string): void {
  const dir = path.dirname(socketPath);
  const uid = process.geteuid?.() ?? 0;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new CroftError('CROFT_ERR_API_SOCKET', `cannot create ${dir} for the local API socket ${socketPath}: ${(err as Error).message}`);
  }
  const st = fs.statSync(dir);
  if (st.uid !== uid) {
    throw new CroftError('CROFT_ERR_API_SOCKET', `${dir} (folder of the local API socket, api.socket) belongs to uid ${st.uid}, not to the daemon's user (uid ${uid}): `
      + `another user could replace the socket; \`chown ${uid} ${dir}\` or choose another api.socket`);
  }
  if (st.mode & 0o022) {
    throw new CroftError('CROFT_ERR_API_SOCKET', `${dir} (folder of the local API socket, api.socket) is writable by others (mode ${(st.mode & 0o7777).toString(8)}): `
      + `another user could replace the socket; \`chmod go-w ${dir}\` or choose a folder of croft's own (default /run/croft/api.sock)`);
  }
}

/** The local API socket (no token needed: only root can open it): 0600, owned by us, or a refusal. */
export async function listenLocal(local: FastifyInstance, socketPath: string): Promise<void> {
  prepareSocketDir(socketPath);
  const old = fs.lstatSync(socketPath, { throwIfNoEntry: false });
  if (old && !old.isSocket()) {
    throw new CroftError('CROFT_ERR_API_SOCKET', `${socketPath} (api.socket) exists and is not a socket: move it away or choose another api.socket`);
  }
  if (old) fs.rmSync(socketPath);
  // Created with no access for others from the start (no window between bind and chmod).
  const umask = process.umask(0o177);
  try {
    await local.listen({ path: socketPath });
  } catch (err) {
    throw new CroftError('CROFT_ERR_API_SOCKET', `cannot listen on the local API socket ${socketPath}: ${(err as Error).message}`);
  } finally {
    process.umask(umask);
  }
  fs.chmodSync(socketPath, 0o600);
  const st = fs.statSync(socketPath);
  if ((st.mode & 0o077) !== 0 || st.uid !== (process.geteuid?.() ?? 0)) {
    await local.close();
    throw new CroftError('CROFT_ERR_API_SOCKET', `the local API socket ${socketPath} could not be made 0600 for the daemon's user (mode ${(st.mode & 0o777).toString(8)}, uid ${st.uid})`);
  }
}
