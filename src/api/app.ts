// The HTTP API, built by a factory apart from listen (tests call inject()).
//   /api/v1/...                   status and commands (authenticated)
//   /health/<module>              200 when this node serves the module, else 503 (for load balancers)
//   /var/modules/<module>/ready.txt  the same, in SafeKit's words, for people migrating
//   /metrics                      Prometheus
//   /                             the web console (authenticated)
import fs from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Daemon, MirrorCommandName, ModuleCommand } from '../daemon/daemon.js';
import { MirrorRuntime } from '../../mirror/runtime.js';
import { servingStates } from '../daemon/states.js';
import { CroftError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { authenticate } from './auth.js';
import { consoleHtml } from './console.js';
import { renderMetrics } from './metrics.js';

export interface ApiOptions {
  logger?: Logger;
  /** For the local unix socket: its file mode (0600, root) is the authentication, and there is no TLS. */
  local?: boolean;
}

export function buildApi(daemon: Daemon, opts: ApiOptions = {}): FastifyInstance {
  const api = daemon.config.cluster.api;
  const https = api.tls && !opts.local ? { cert: fs.readFileSync(api.tls.cert), key: fs.readFileSync(api.tls.key) } : null;
  const app = (https
    ? Fastify({ https, loggerInstance: opts.logger, disableRequestLogging: true })
    : Fastify({ loggerInstance: opts.logger, disableRequestLogging: true })) as unknown as FastifyInstance;

  const requireAuth = async (req: FastifyRequest, reply: FastifyReply) => {
    if (opts.local) return;
    const r = authenticate(api, req.headers.authorization, req.socket.remoteAddress);
    if (!r.ok) {
      reply.header('www-authenticate', 'Basic realm="croft", Bearer');
      return reply.code(401).send({ error: 'CROFT_ERR_API', message: `unauthorized: ${r.reason}` });
    }
  };

  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof CroftError) {
      const status = err.code === 'CROFT_ERR_UNKNOWN_MODULE' ? 404 : err.code === 'CROFT_ERR_MIRROR_REFUSED' ? 409 : 400;
      return reply.code(status).send({ error: err.code, message: err.message });
    }
    const e = err as { statusCode?: number; message?: string };
    return reply.code(e.statusCode ?? 500).send({ error: 'CROFT_ERR_API', message: e.message ?? String(err) });
  });

  app.register(async (v1) => {
    v1.addHook('onRequest', requireAuth);
    v1.get('/status', async () => daemon.status());
    v1.get<{ Params: { module: string } }>('/modules/:module', async (req) => {
      const rt = daemon.runtimes.get(req.params.module);
      if (!rt) throw new CroftError('CROFT_ERR_UNKNOWN_MODULE', `module "${req.params.module}" does not run on node ${daemon.self}`);
      return { node: daemon.self, ...rt.status(), cluster: daemon.status().modules[req.params.module],
        farm: daemon.farms.get(req.params.module)?.status(),
        mirror: rt instanceof MirrorRuntime ? rt.mirrorStatus() : undefined };
    });
    // Mirror modules: prim, second, swap (refused: 409 with the machine's reason), the detailed
    // status, and verify (on the PRIM: both sides compared by checksum).
    for (const command of ['prim', 'second', 'swap'] as const satisfies readonly MirrorCommandName[]) {
      v1.post<{ Params: { module: string } }>(`/modules/:module/${command}`, async (req, reply) => {
        daemon.mirrorCommand(req.params.module, command, `${command} requested through the API`);
        return reply.code(202).send({ node: daemon.self, module: req.params.module, command, accepted: true });
      });
    }
    v1.get<{ Params: { module: string } }>('/modules/:module/mirror', async (req) => {
      const rt = daemon.mirror(req.params.module);
      return { ...rt.mirrorStatus(), cluster: daemon.status().modules[req.params.module] };
    });
    v1.post<{ Params: { module: string } }>('/modules/:module/mirror/verify', async (req) => {
      const rt = daemon.mirror(req.params.module);
      const t0 = Date.now();
      const result = await rt.verify();
      return { node: daemon.self, module: req.params.module, durationMs: Date.now() - t0, ...result };
    });
    for (const command of ['start', 'stop', 'restart'] as const satisfies readonly ModuleCommand[]) {
      v1.post<{ Params: { module: string } }>(`/modules/:module/${command}`, async (req, reply) => {
        daemon.command(req.params.module, command, `${command} requested through the API`);
        return reply.code(202).send({ node: daemon.self, module: req.params.module, command, accepted: true });
      });
    }
  }, { prefix: '/api/v1' });

  const ready = (module: string): { known: boolean; state: string; serving: boolean } => {
    const rt = daemon.runtimes.get(module);
    const known = daemon.config.modules.some((m) => m.name === module);
    const state = rt ? rt.state() : 'STOP';
    return { known, state, serving: servingStates.has(state) };
  };

  app.get<{ Params: { module: string } }>('/health/:module', async (req, reply) => {
    const r = ready(req.params.module);
    if (!r.known) return reply.code(404).send({ module: req.params.module, node: daemon.self, error: 'no such module' });
    return reply.code(r.serving ? 200 : 503).send({ module: req.params.module, node: daemon.self, state: r.state, ready: r.serving });
  });

  app.get<{ Params: { module: string } }>('/var/modules/:module/ready.txt', async (req, reply) => {
    const r = ready(req.params.module);
    reply.type('text/plain');
    if (!r.known) return reply.code(404).send('unknown\n');
    return reply.code(r.serving ? 200 : 503).send(r.serving ? 'ready\n' : 'not_ready\n');
  });

  app.get('/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4');
    return renderMetrics(daemon);
  });

  app.get('/', { onRequest: requireAuth }, async (_req, reply) => {
    reply.type('text/html; charset=utf-8');
    return consoleHtml(daemon.config.cluster.name, daemon.self);
  });

  return app;
}
