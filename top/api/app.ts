// The HTTP API, built by a factory apart from listen (tests call inject()).
//   /api/v1/...                   status, events (read) and commands (POST: start, stop, maintenance,
//                                 reload...): credentials as below
//   /health/<module>              200 when this node serves the module, else 503 (for load balancers)
//   /var/modules/<module>/ready.txt  the same, in SafeKit's words, for people migrating
//   /metrics                      Prometheus (a credential only with api.metrics_auth)
//   /                             the web console (authenticated; else its login page), /console.js
//                                 and /console.css; its routes (login, stream...) in console-routes.ts
//
// Who may do what (DESIGN.md, "Trust and the wire"):
// - Over TCP a command (any POST) always needs a configured token or user, loopback included: a
//   local unprivileged user must not command modules. With none configured, TCP is read-only
//   (status from loopback, health, metrics) and a command is answered 403 with how to configure one.
// - The console's session cookie (session.ts, POST /api/v1/login) stands for a user or token;
//   HttpOnly, SameSite=Strict, Secure under TLS. A command it authenticates must carry an Origin
//   (checked below): the cookie alone never commands.
// - Roles (auth.ts): a viewer user reads only; an operator also commands; reload needs admin (a
//   token, or a user whose role is admin, the default). A refusal is 403 CROFT_ERR_API_ROLE.
// - The local unix socket (root-only, top/cli/daemon.ts) needs no credential: its file mode is the
//   authentication.
// - Every request but the health checks must name in Host one of the names this API serves (its
//   listen address, loopback, this node's addresses and hostname, api.allowed_hosts): else 421. A
//   DNS-rebinding page's requests carry the attacker's name and are refused.
// - A POST whose Origin (or Referer) is not this API's origin is refused (403): a browser holding
//   Basic credentials cannot be made to command croft by another site. GET never changes state.
// - Failed logins are limited per source (FailedLogins: 10 a minute, then 429 with Retry-After).
// - Connections, header and request times and bodies are capped (apiLimits).
// - Every response carries CSP (no inline script or style), X-Frame-Options DENY, nosniff,
//   Referrer-Policy no-referrer and Cache-Control no-store.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ApiConfig, ApiRole } from '../../src/config/types.js';
import type { Daemon, MirrorCommandName, ModuleCommand } from '../daemon/daemon.js';
import { MirrorRuntime } from '../../mirror/runtime.js';
import { servingStates } from '../daemon/states.js';
import { codes, CroftError, type ErrorCode } from '../../src/errors.js';
import type { Logger, LogRing } from '../../src/log/logger.js';
import { authenticate, credentialsConfigured, FailedLogins, howToConfigure, isLoopback, roleAllows } from './auth.js';
import { eventsQuery } from './events.js';
import { consoleHtml } from './console.js';
import { consoleJs } from './console-js.js';
import { consoleCss } from './console-css.js';
import { consoleRoutes, sessionRoutes } from './console-routes.js';
import { SESSION_COOKIE, Sessions, cookieValue } from './session.js';
import { renderMetrics } from './metrics.js';
import { PUSH_MAX_BYTES } from '../../src/config/bundle.js';

/** Config push bodies received at once (top/api/app.ts, the push route). */
const PUSH_CONCURRENT = 2;

/** Bounds of the HTTP server (each also bounds what a client can make the daemon hold). */
export const apiLimits = {
  /** Open connections at once; past it, new ones are closed at accept. */
  maxConnections: 128,
  /**
   * Open connections from one source (an address, an IPv6 /64): one client cannot take them all
   * (and with them the load balancer's /health probes).
   */
  maxConnectionsPerSource: 32,
  /** The whole header must arrive within this (slowloris). */
  headersTimeoutMs: 10_000,
  /** The whole request must arrive within this (the answer may take longer: mirror verify). */
  requestTimeoutMs: 30_000,
  /** An idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** No route takes a body; 16 KiB is plenty for any that would. */
  bodyLimit: 16 * 1024,
};

export const securityHeaders: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export interface ApiOptions {
  logger?: Logger;
  /** For the local unix socket: its file mode (0600, root) is the authentication, and there is no TLS. */
  local?: boolean;
  /** The failed-login table (tests pass a small one; default 10 failures a minute per source). */
  failedLogins?: FailedLogins;
  /** Overrides of apiLimits (tests). */
  limits?: Partial<typeof apiLimits>;
  /** The node's last log lines, for the console's log tail (the daemon's logger sink). */
  logTail?: LogRing;
}

/** Lowercased host name of a Host header ("[::1]:9450" -> "::1"), or null when unusable. */
export function hostOf(header: string | undefined): string | null {
  if (!header) return null;
  const h = header.trim().toLowerCase();
  let name: string;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    name = h.slice(1, end);
  } else {
    const colon = h.indexOf(':');
    // More than one colon without brackets: a bare IPv6 address (not valid in Host, but harmless).
    name = colon >= 0 && h.indexOf(':', colon + 1) < 0 ? h.slice(0, colon) : h;
  }
  name = name.replace(/\.$/, '');
  return name || null;
}

/** The names a client may put in Host for this API (see the header comment). */
export function allowedHostNames(daemon: Daemon, local: boolean): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '::1']);
  if (local) return names;
  const api = daemon.config.cluster.api;
  if (api.host !== '0.0.0.0' && api.host !== '::') names.add(api.host.toLowerCase());
  for (const a of daemon.config.cluster.nodes.find((n) => n.name === daemon.self)?.addresses ?? []) names.add(a.toLowerCase());
  const hostname = os.hostname().toLowerCase();
  if (hostname) {
    names.add(hostname);
    names.add(hostname.split('.')[0] ?? hostname);
  }
  for (const h of api.allowedHosts ?? []) names.add(h.toLowerCase().replace(/^\[|\]$/g, ''));
  return names;
}

/** Warnings to log when the API starts listening (also what `croft check` could say). */
export function listenWarnings(api: ApiConfig): string[] {
  const out: string[] = [];
  const beyondLoopback = !isLoopback(api.host);
  if (beyondLoopback && !api.tls) {
    out.push(`the API listens on ${api.host}:${api.port} beyond loopback without TLS: tokens, passwords and status cross the network in clear `
      + '(anyone on the path can read them and replay a token); set api.tls (cert and key) in cluster.yaml, or api.host: 127.0.0.1');
  }
  if (beyondLoopback && !credentialsConfigured(api)) {
    out.push(`the API listens on ${api.host}:${api.port} with no token or user configured: it is read-only over TCP `
      + '(health and metrics; status from loopback only) and refuses every command; configure api.tokens to command it over the network');
  }
  return out;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Routes a load balancer probes, perhaps by a name we do not know: no Host check, no credential. */
const PROBE_ROUTES = new Set(['/health/:module', '/var/modules/:module/ready.txt']);

function originOf(value: string | undefined): string | null | undefined {
  if (value === undefined) return undefined;
  try {
    const u = new URL(value);
    return u.origin === 'null' ? null : u.origin;
  } catch {
    return null;
  }
}

/** Closes at once a connection past `max` open ones from its source. */
function limitPerSource(server: net.Server, max: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: net.Socket) => {
    const key = FailedLogins.source(socket.remoteAddress);
    const n = (open.get(key) ?? 0) + 1;
    if (n > max) {
      socket.destroy();
      return;
    }
    open.set(key, n);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left <= 0) open.delete(key);
      else open.set(key, left);
    });
  });
}

export function buildApi(daemon: Daemon, opts: ApiOptions = {}): FastifyInstance {
  const api = daemon.config.cluster.api;
  const limits = { ...apiLimits, ...opts.limits };
  const tls = api.tls && !opts.local ? { cert: fs.readFileSync(api.tls.cert), key: fs.readFileSync(api.tls.key) } : null;
  const scheme = tls ? 'https' : 'http';
  // How often Node looks for requests past their timeouts (default 30 s: too coarse here). Half
  // the headers' timeout: a slow client is cut at 1 to 1.5 times it. Not finer: Node checks even
  // with no connection open, a wake of the idle daemon each time (~1 ms of CPU; bench/farm, idle).
  const serverOptions = { connectionsCheckingInterval: Math.max(100, Math.round(limits.headersTimeoutMs / 2)) };
  const app = Fastify({
    loggerInstance: opts.logger,
    // No line per request: a request flood must not become a log flood.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyLimit,
    serverFactory: (handler) => {
      const server = tls
        ? https.createServer({ ...tls, ...serverOptions }, handler)
        : http.createServer(serverOptions, handler);
      server.maxConnections = limits.maxConnections;
      if (!opts.local) limitPerSource(server, limits.maxConnectionsPerSource);
      server.headersTimeout = limits.headersTimeoutMs;
      server.requestTimeout = limits.requestTimeoutMs;
      server.keepAliveTimeout = limits.keepAliveTimeoutMs;
      return server;
    },
  }) as unknown as FastifyInstance;
  const log = opts.logger;
  const failed = opts.failedLogins ?? new FailedLogins();
  const hosts = allowedHostNames(daemon, Boolean(opts.local));
  const sessions = new Sessions(api);

  /** A refusal with its code's status (src/errors.ts), or `status` where the code is a generic one. */
  const refuse = (reply: FastifyReply, error: ErrorCode, message: string, status = codes[error].statusCode) =>
    reply.code(status).send({ error, message });

  // Host and Origin, before anything else (routing included: an unknown path answers 421 too).
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.url && PROBE_ROUTES.has(req.routeOptions.url) && SAFE_METHODS.has(req.method)) return;
    const host = hostOf(req.headers.host);
    if (host === null || !hosts.has(host)) {
      // The accepted names are not listed: they would tell anyone this node's addresses and names.
      return refuse(reply, 'CROFT_ERR_API_HOST', `Host "${(req.headers.host ?? '').slice(0, 100)}" is not a name this API serves `
        + '(its listen address, loopback, this node\'s addresses and hostname); if clients reach it by that name, add it to api.allowed_hosts in cluster.yaml');
    }
    if (SAFE_METHODS.has(req.method)) return;
    const fetchSite = req.headers['sec-fetch-site'];
    if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') {
      return refuse(reply, 'CROFT_ERR_API_ORIGIN', `cross-site request refused (Sec-Fetch-Site: ${fetchSite})`);
    }
    const origin = req.headers.origin !== undefined ? originOf(req.headers.origin) : originOf(req.headers.referer);
    if (origin === undefined) return; // not a browser's cross-site request: curl, the CLI
    const self = originOf(`${scheme}://${req.headers.host}`);
    if (origin === null || origin !== self) {
      return refuse(reply, 'CROFT_ERR_API_ORIGIN', `cross-origin request refused: ${req.headers.origin !== undefined ? 'Origin' : 'Referer'} `
        + `${String(req.headers.origin ?? req.headers.referer)} is not this API (${self})`);
    }
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(securityHeaders);
    return payload;
  });

  /** The role of each authenticated request (the local socket's is admin: root). */
  const roles = new WeakMap<FastifyRequest, ApiRole>();
  const names = new WeakMap<FastifyRequest, string>();
  const refuseRole = (reply: FastifyReply, role: ApiRole, needs: ApiRole) => refuse(reply, 'CROFT_ERR_API_ROLE',
    `forbidden: this credential's role is ${role}; this needs ${needs}${needs === 'operator' ? ' or admin' : ''} (api.users[].role in cluster.yaml)`);
  /** Credentials check; `command`: a state-changing request (never allowed over TCP without a credential; operator role at least). */
  const authorize = (command: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    if (opts.local) {
      roles.set(req, 'admin');
      return;
    }
    const address = req.socket.remoteAddress;
    const blockedMs = failed.blockedForMs(address);
    if (blockedMs > 0) {
      reply.header('retry-after', String(Math.ceil(blockedMs / 1000)));
      return refuse(reply, 'CROFT_ERR_API_RATE', `too many failed logins from ${FailedLogins.source(address)}: `
        + `try again in ${Math.ceil(blockedMs / 1000)} s`);
    }
    if (command && !credentialsConfigured(api)) {
      return refuse(reply, 'CROFT_ERR_API_FORBIDDEN', `commands over TCP need a credential and none is configured: ${howToConfigure(api)}`);
    }
    let r = authenticate(api, req.headers.authorization, address);
    // No Authorization header: the console's session cookie, if any.
    const session = !r.ok && req.headers.authorization === undefined ? sessions.resolve(cookieValue(req.headers.cookie, SESSION_COOKIE)) : null;
    if (session) {
      // The Origin, when present, was checked same-origin in onRequest; a cookie with none is refused.
      if (command && req.headers.origin === undefined && req.headers['sec-fetch-site'] !== 'same-origin') {
        return refuse(reply, 'CROFT_ERR_API_ORIGIN', 'a command authenticated by the console\'s session cookie must come from the console (no Origin header)');
      }
      r = { ok: true, ...session };
    }
    if (!r.ok) {
      if (r.attempted) {
        failed.fail(address);
        if (failed.blockedForMs(address) > 0) {
          log?.warn({ event: 'api_login_blocked', source: FailedLogins.source(address), failures: failed.limit },
            `${failed.limit} failed logins from ${FailedLogins.source(address)} within ${failed.windowMs / 1000} s: refused for the rest of that time`);
        }
      }
      // The console's own requests (its fetches say so; its stream carries the session cookie) ask
      // for no Basic prompt: it shows its login form instead.
      if (req.headers['x-croft-console'] === undefined && cookieValue(req.headers.cookie, SESSION_COOKIE) === null) {
        reply.header('www-authenticate', 'Basic realm="croft", Bearer');
      }
      return refuse(reply, 'CROFT_ERR_API', `unauthorized: ${r.reason}`, 401);
    }
    roles.set(req, r.role);
    names.set(req, r.who);
    if (command && !roleAllows(r.role, 'operator')) return refuseRole(reply, r.role, 'operator');
  };
  /** For the routes that need more than operator (reload: admin). */
  const requireRole = (needs: ApiRole) => async (req: FastifyRequest, reply: FastifyReply) => {
    const role = roles.get(req) ?? 'viewer';
    if (!roleAllows(role, needs)) return refuseRole(reply, role, needs);
  };
  const consoleDeps = {
    daemon, api, sessions, secure: tls !== null, failed, logTail: opts.logTail, refuse,
    whoOf: (req: FastifyRequest) => (roles.has(req) ? { who: opts.local ? 'root on the local socket' : names.get(req) ?? '?', role: roles.get(req)! } : null),
  };
  const who = (req: FastifyRequest) => (opts.local ? 'root on the local socket' : `${names.get(req) ?? '?'} (${roles.get(req) ?? '?'}) through the API`);

  app.setErrorHandler((err: unknown, _req, reply) => {
    // Each code carries its status (src/errors.ts): 404 unknown module, 409 a mirror's refusal, ...
    if (err instanceof CroftError) return refuse(reply, err.code, err.message);
    // fastify's own errors (a bad body, a route's 404) carry their 4xx; anything else is ours: 500.
    const e = err as { statusCode?: number; message?: string };
    return refuse(reply, 'CROFT_ERR_API', e.message ?? String(err), e.statusCode);
  });

  app.register(async (v1) => {
    const read = authorize(false);
    const commandAuth = authorize(true);
    v1.addHook('onRequest', (req, reply) => (SAFE_METHODS.has(req.method) ? read : commandAuth)(req, reply));
    v1.get('/status', async () => daemon.status());
    consoleRoutes(v1, consoleDeps, securityHeaders);
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
    // Re-read the daemon's config folder and apply it (Daemon.reload): 200 with what it did, or the
    // loader's file:line problems (CROFT_ERR_CONFIG), or CROFT_ERR_RELOAD_RESTART; nothing changed then.
    v1.post('/reload', { preHandler: requireRole('admin') }, async () => daemon.reloadFromDisk('reload requested through the API'));
    // The node's events, oldest first (the same records the notifications carry): ?module= &node=
    // &kind= &since=<sequence> &limit=. Viewers may read them.
    v1.get<{ Querystring: Record<string, string | undefined> }>('/events', async (req) => ({
      node: daemon.self, incarnation: daemon.incarnation, sequence: daemon.events.sequence, events: daemon.events.events(eventsQuery(req.query)),
    }));
    // Maintenance (top/daemon/maintenance.ts): of the whole node, or of a module of this node.
    v1.get('/maintenance', async () => ({ node: daemon.self, maintenance: daemon.maintenance.snapshot() }));
    for (const on of [true, false]) {
      const word = on ? 'on' : 'off';
      v1.post(`/maintenance/${word}`, async (req) => ({
        node: daemon.self, module: null, maintenance: on, changed: daemon.setMaintenance(null, on, who(req)), state: daemon.maintenance.snapshot(),
      }));
      v1.post<{ Params: { module: string } }>(`/modules/:module/maintenance/${word}`, async (req) => ({
        node: daemon.self, module: req.params.module, maintenance: on, changed: daemon.setMaintenance(req.params.module, on, who(req)), state: daemon.maintenance.snapshot(),
      }));
    }
    for (const command of ['start', 'stop', 'restart'] as const satisfies readonly ModuleCommand[]) {
      v1.post<{ Params: { module: string } }>(`/modules/:module/${command}`, async (req, reply) => {
        daemon.command(req.params.module, command, `${command} requested through the API`);
        return reply.code(202).send({ node: daemon.self, module: req.params.module, command, accepted: true });
      });
    }
  }, { prefix: '/api/v1' });

  sessionRoutes(app, consoleDeps);

  // `croft config push` (top/daemon/push.ts): authenticated by the bundle's seal under the cluster
  // key, not by an API credential (nodes need none to push to each other). A seal that does not open
  // counts as a failed login of its source (the same limiter). Host and Origin are checked as above.
  app.register(async (push) => {
    // Base64 in JSON makes the files 4/3 larger; the rest of the API keeps its 16 KiB bound.
    const bodyLimit = Math.ceil(PUSH_MAX_BYTES * 4 / 3) + 1024 * 1024;
    push.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
    // At most PUSH_CONCURRENT bodies held at once (each up to bodyLimit), whoever sends them: refused
    // before the body is read, so memory stays bounded even under a flood of (unsealed) pushes.
    let inFlight = 0;
    const holdSlot = async (_req: FastifyRequest, reply: FastifyReply) => {
      if (inFlight >= PUSH_CONCURRENT) {
        return refuse(reply, 'CROFT_ERR_API_RATE', `${inFlight} config pushes are being received: try again in a moment`);
      }
      inFlight += 1;
      reply.raw.once('close', () => { inFlight -= 1; });
    };
    push.post('/api/v1/config/push', { bodyLimit, onRequest: holdSlot }, async (req, reply) => {
      const address = req.socket.remoteAddress;
      const blockedMs = opts.local ? 0 : failed.blockedForMs(address);
      if (blockedMs > 0) {
        reply.header('retry-after', String(Math.ceil(blockedMs / 1000)));
        return refuse(reply, 'CROFT_ERR_API_RATE', `too many failed logins from ${FailedLogins.source(address)}: try again in ${Math.ceil(blockedMs / 1000)} s`);
      }
      if (!Buffer.isBuffer(req.body)) {
        daemon.push.refused.bundle += 1;
        return refuse(reply, 'CROFT_ERR_PUSH_BUNDLE', 'a config push is a croft bundle sent as application/octet-stream (croft config push)');
      }
      try {
        return await daemon.push.receive(req.body, opts.local ? 'local socket' : address);
      } catch (err) {
        if (err instanceof CroftError && err.code === 'CROFT_ERR_PUSH_AUTH' && !opts.local) failed.fail(address);
        throw err;
      }
    });
  });

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

  app.get('/metrics', { onRequest: api.metricsAuth ? authorize(false) : [] }, async (_req, reply) => {
    reply.type('text/plain; version=0.0.4');
    return renderMetrics(daemon);
  });

  // The page: for a request without a valid credential, 401 with the login form (and no Basic
  // prompt: the form posts to /api/v1/login); the names of the cluster and node only once in.
  const pageAuth = authorize(false);
  app.get('/', async (req, reply) => {
    if (req.headers.authorization !== undefined || opts.local || !credentialsConfigured(api)) {
      await pageAuth(req, reply);
      if (reply.sent) return reply;
    } else if (sessions.resolve(cookieValue(req.headers.cookie, SESSION_COOKIE)) === null) {
      return reply.code(401).type('text/html; charset=utf-8').send(consoleHtml(null, null));
    }
    return reply.type('text/html; charset=utf-8').send(consoleHtml(daemon.config.cluster.name, daemon.self));
  });
  // The console's script and style: no secret in them, so no credential (the page itself needs one).
  app.get('/console.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(consoleJs));
  app.get('/console.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(consoleCss));

  return app;
}
