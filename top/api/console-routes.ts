// The web console's own routes (the page is top/api/console.ts; the actions are the API's commands,
// called by the page as the CLI calls them):
//   POST /api/v1/login, /api/v1/logout     a session cookie for a user or token (session.ts)
//   GET  /api/v1/whoami                    who the credential is, its role
//   GET  /api/v1/console/snapshot          the cluster status, every farm's bucket map, every mirror's detail
//   GET  /api/v1/console/stream            server-sent events: 'snapshot' twice a second and at once on
//                                          every event of the node, 'event' per event, 'log' per log line
//   GET  /api/v1/farm/:module/who?client=&port=   the bucket and node that serve one client
//   GET  /api/v1/log?lines=N               the newest lines of this node's log (LogRing)
//   GET  /api/v1/console/connections       this node's live connections per farm (read by the peers' consoles)
// Other nodes' events and connections come from their APIs (console-peers.ts).
// Everything but login answers only to a credential (the /api/v1 hook of app.ts); nothing here
// changes a module's state.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiConfig } from '../../src/config/types.js';
import { CroftError, type ErrorCode } from '../../src/errors.js';
import type { LogRing } from '../../src/log/logger.js';
import { farmMap, farmWho, upNodesOf, type FarmMapView, type FarmWhoView } from '../cli/farm.js';
import type { Daemon } from '../daemon/daemon.js';
import type { ClusterStatus } from '../daemon/status-types.js';
import type { FarmStatus } from '../../farm/runtime.js';
import type { MirrorDetail } from '../../mirror/status.js';
import type { NotifyEvent } from '../notify/event.js';
import { authenticate, FailedLogins } from './auth.js';
import { connectionsWatch } from './metrics.js';
import { PeerFeed, type PeerInfo } from './console-peers.js';
import { SESSION_COOKIE, Sessions, cookieValue } from './session.js';

/** Console streams open at once on a node (each holds a socket and a bounded write buffer). */
export const MAX_STREAMS = 32;
/** Past this many bytes unsent to a slow stream, snapshots and lines are skipped for it (not queued). */
const STREAM_BUFFER_BYTES = 1024 * 1024;
/** How often the stream sends a snapshot when nothing happened (heartbeat ages, reintegration progress). */
export const SNAPSHOT_EVERY_MS = 500;
/** How often the other nodes' APIs are read while a stream is open. */
const PEERS_EVERY_MS = 1000;
/** Quarantine folders listed per mirror (newest last). */
const QUARANTINE_SHOWN = 20;

export interface ConsoleSnapshot {
  status: ClusterStatus;
  /** Farm modules of this node: the map of its UP members, this node's own status, its live connections. */
  farms: Record<string, { map: FarmMapView; here: FarmStatus | null; connections: number | null }>;
  /** Mirror modules of this node: the detail, and the quarantine folders here. */
  mirrors: Record<string, MirrorDetail & { quarantine: string[] }>;
  /** What this node could read of each other node's API (console-peers.ts); {} when not read. */
  peers: Record<string, PeerInfo>;
}

function quarantineFolders(daemon: Daemon, module: string): string[] {
  try {
    return fs.readdirSync(path.join(daemon.config.cluster.stateDir, 'mirror', module, 'quarantine')).sort().slice(-QUARANTINE_SHOWN);
  } catch {
    return [];
  }
}

function connectionsOf(daemon: Daemon): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [m, farm] of daemon.farms) {
    const vip = farm.status().vip;
    out[m] = vip ? connectionsWatch(vip).value() : null;
  }
  return out;
}

export function consoleSnapshot(daemon: Daemon, peers: Record<string, PeerInfo> = {}): ConsoleSnapshot {
  const status = daemon.status();
  const farms: ConsoleSnapshot['farms'] = {};
  for (const m of daemon.config.modules) {
    if (m.kind !== 'farm' || status.modules[m.name] === undefined) continue;
    const here = daemon.farms.get(m.name)?.status() ?? null;
    farms[m.name] = {
      map: farmMap(daemon.config, m.name, upNodesOf(status, m.name)),
      here,
      connections: here?.vip ? connectionsWatch(here.vip).value() : null,
    };
  }
  const mirrors: ConsoleSnapshot['mirrors'] = {};
  for (const [name, rt] of daemon.mirrors) mirrors[name] = { ...rt.mirrorStatus(), quarantine: quarantineFolders(daemon, name) };
  return { status, farms, mirrors, peers };
}

export interface ConsoleDeps {
  daemon: Daemon;
  api: ApiConfig;
  sessions: Sessions;
  /** The cookie gets Secure (the API is https). */
  secure: boolean;
  failed: FailedLogins;
  logTail?: LogRing;
  refuse: (reply: FastifyReply, error: ErrorCode, message: string, status?: number) => FastifyReply;
  /** Who the request's credential is (set by app.ts's authorize). */
  whoOf: (req: FastifyRequest) => { who: string; role: string } | null;
}

/** POST /api/v1/login and /api/v1/logout (outside the /api/v1 credential hook: they make the credential). */
export function sessionRoutes(app: FastifyInstance, d: ConsoleDeps): void {
  app.post<{ Body: unknown }>('/api/v1/login', async (req, reply) => {
    const address = req.socket.remoteAddress;
    const blockedMs = d.failed.blockedForMs(address);
    if (blockedMs > 0) {
      reply.header('retry-after', String(Math.ceil(blockedMs / 1000)));
      return d.refuse(reply, 'CROFT_ERR_API_RATE', `too many failed logins from ${FailedLogins.source(address)}: try again in ${Math.ceil(blockedMs / 1000)} s`);
    }
    const b = (req.body ?? {}) as Record<string, unknown>;
    const str = (k: string) => (typeof b[k] === 'string' ? b[k] as string : undefined);
    const user = str('user');
    const password = str('password');
    const token = str('token');
    if ((user === undefined || password === undefined) && token === undefined) {
      return d.refuse(reply, 'CROFT_ERR_USAGE', 'login expects JSON {"user": ..., "password": ...} or {"token": ...}');
    }
    const authorization = token !== undefined ? `Bearer ${token}` : `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const r = authenticate(d.api, authorization, address);
    if (!r.ok) {
      if (r.attempted) d.failed.fail(address);
      return d.refuse(reply, 'CROFT_ERR_API', `login refused: ${r.reason}`, 401);
    }
    const id = d.sessions.open(token !== undefined ? { token } : { user: r.who });
    reply.header('set-cookie', Sessions.setCookie(id, d.secure, d.sessions.ttlMs));
    return { who: r.who, role: r.role, node: d.daemon.self, cluster: d.daemon.config.cluster.name };
  });
  app.post('/api/v1/logout', async (req, reply) => {
    d.sessions.close(cookieValue(req.headers.cookie, SESSION_COOKIE));
    reply.header('set-cookie', Sessions.setCookie(null, d.secure, 0));
    return { loggedOut: true };
  });
}

/** A console stream: writes events to one response, skipping what a slow reader cannot take. */
class Stream {
  constructor(private readonly res: FastifyReply['raw']) {}
  send(event: string, data: unknown, droppable = true): void {
    if (this.res.destroyed) return;
    if (droppable && this.res.writableLength > STREAM_BUFFER_BYTES) return;
    this.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }
}

/** The routes under /api/v1 (registered inside app.ts's /api/v1 plugin, behind its credential hook). */
export function consoleRoutes(v1: FastifyInstance, d: ConsoleDeps, headers: Readonly<Record<string, string>>): void {
  const { daemon } = d;
  v1.get('/whoami', async (req) => ({ ...(d.whoOf(req) ?? { who: '?', role: 'viewer' }), node: daemon.self, cluster: daemon.config.cluster.name }));
  v1.get('/console/connections', async () => ({ node: daemon.self, farms: connectionsOf(daemon) }));
  v1.get<{ Params: { module: string }; Querystring: Record<string, string | undefined> }>('/farm/:module/who', async (req): Promise<FarmWhoView> => {
    const client = req.query.client ?? '';
    const portText = req.query.port;
    let port: number | undefined;
    if (portText !== undefined && portText !== '') {
      if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new CroftError('CROFT_ERR_USAGE', `port=${portText.slice(0, 20)}: expected a port number from 0 to 65535`);
      port = Number(portText);
    }
    return farmWho(daemon.config, req.params.module, upNodesOf(daemon.status(), req.params.module), client.slice(0, 64), port);
  });
  v1.get<{ Querystring: Record<string, string | undefined> }>('/log', async (req) => {
    const n = Math.min(500, Math.max(1, Number(req.query.lines ?? '200') || 200));
    return { node: daemon.self, lines: d.logTail?.lines(n) ?? [] };
  });

  const open = new Set<Stream>();
  const peers = new PeerFeed(daemon, (events) => {
    for (const e of events) broadcast('event', e);
  });
  v1.get('/console/snapshot', async () => consoleSnapshot(daemon, peers.info()));
  let timer: NodeJS.Timeout | null = null;
  let peerTimer: NodeJS.Timeout | null = null;
  let soon: NodeJS.Timeout | null = null;
  const broadcast = (event: string, data: unknown) => { for (const s of open) s.send(event, data); };
  const snapshotAll = () => {
    if (open.size === 0) return;
    let snap: ConsoleSnapshot;
    try {
      snap = consoleSnapshot(daemon, peers.info());
    } catch (e) {
      broadcast('problem', { message: (e as Error).message });
      return;
    }
    broadcast('snapshot', snap);
  };
  const onEvent = (e: NotifyEvent) => {
    broadcast('event', e);
    // The state behind the event, at once (a few events in a burst make one snapshot).
    soon ??= setTimeout(() => { soon = null; snapshotAll(); }, 30);
  };
  const onLine = (line: string) => broadcast('log', line);
  const first = () => {
    daemon.events.on('event', onEvent);
    d.logTail?.on('line', onLine);
    timer = setInterval(snapshotAll, SNAPSHOT_EVERY_MS);
    timer.unref();
    peers.poll();
    peerTimer = setInterval(() => peers.poll(), PEERS_EVERY_MS);
    peerTimer.unref();
  };
  const last = () => {
    daemon.events.off('event', onEvent);
    d.logTail?.off('line', onLine);
    if (timer) clearInterval(timer);
    if (peerTimer) clearInterval(peerTimer);
    if (soon) clearTimeout(soon);
    timer = soon = peerTimer = null;
  };

  v1.get('/console/stream', async (req, reply) => {
    if (open.size >= MAX_STREAMS) return d.refuse(reply, 'CROFT_ERR_API_BUSY', `${open.size} console streams are open on ${daemon.self} (at most ${MAX_STREAMS})`);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' });
    const s = new Stream(res);
    if (open.size === 0) first();
    open.add(s);
    s.send('hello', { ...(d.whoOf(req) ?? {}), node: daemon.self, cluster: daemon.config.cluster.name }, false);
    s.send('events', [...daemon.events.events({ limit: 300 }), ...peers.events()].sort((a, b) => a.time.localeCompare(b.time)), false);
    s.send('log', d.logTail?.lines(200) ?? [], false);
    s.send('snapshot', consoleSnapshot(daemon, peers.info()), false);
    // A comment line now and then: proxies and the browser keep an idle stream open.
    const ping = setInterval(() => { if (!res.destroyed && res.writableLength < STREAM_BUFFER_BYTES) res.write(': ping\n\n'); }, 15_000);
    ping.unref();
    res.on('close', () => {
      clearInterval(ping);
      open.delete(s);
      if (open.size === 0) last();
    });
  });
  v1.addHook('onClose', async () => {
    last();
    open.clear();
  });
}
