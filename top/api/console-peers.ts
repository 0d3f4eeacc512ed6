// What the console shows of the other nodes beyond what the heartbeats carry: their events (the
// timeline across nodes) and their live connections per farm. While a console stream is open, the
// node reads each UP peer's API once a second (GET /api/v1/events?since=, GET
// /api/v1/console/connections) with the cluster's own credential (cluster.yaml is the same on
// every node: its first token, else its first user), as the CLI would.
//
// Never in clear: over plain http beyond loopback the credential is not sent (apiRequest's
// checkTransport), so without api.tls the console says that peers' events need it, and shows this
// node's alone. Bounded: one request per peer at a time, 1.5 s each, the last `keep` events per peer.
import tls from 'node:tls';
import fs from 'node:fs';
import { apiRequest, type ApiTarget } from '../cli/client.js';
import type { Daemon } from '../daemon/daemon.js';
import type { NotifyEvent } from '../notify/event.js';

const TIMEOUT_MS = 1500;

export interface PeerInfo {
  /** Live connections to each farm's VIP on that node (null: not known). */
  connections: Record<string, number | null>;
  /** Why that node's events and counts are not shown (null: they are). */
  problem: string | null;
  /** Wall-clock ms of the last answer. */
  atMs: number | null;
}

interface PeerState {
  incarnation: number | null;
  sequence: number;
  events: NotifyEvent[];
  busy: boolean;
  info: PeerInfo;
}

export class PeerFeed {
  readonly #peers = new Map<string, PeerState>();

  constructor(private readonly daemon: Daemon, private readonly onEvents: (events: NotifyEvent[]) => void, readonly keep = 300) {}

  #target(node: string): ApiTarget | string {
    const api = this.daemon.config.cluster.api;
    const address = this.daemon.config.cluster.nodes.find((n) => n.name === node)?.addresses[0];
    if (!address) return `no address for ${node} in cluster.yaml`;
    const token = api.tokens[0];
    const user = api.users[0];
    const authorization = token ? `Bearer ${token}` : user ? `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}` : undefined;
    if (!authorization) return 'no token or user in cluster.yaml to read the other nodes with';
    const host = address.includes(':') ? `[${address}]` : address;
    if (!api.tls) return `${node}'s events are not read: the API has no TLS (api.tls), and its credential is not sent in clear; open ${node}'s own console`;
    return { url: new URL(`https://${host}:${api.port}`), authorization, ca: [...tls.rootCertificates, fs.readFileSync(api.tls.cert, 'utf8')] };
  }

  #state(node: string): PeerState {
    let s = this.#peers.get(node);
    if (!s) {
      s = { incarnation: null, sequence: 0, events: [], busy: false, info: { connections: {}, problem: null, atMs: null } };
      this.#peers.set(node, s);
    }
    return s;
  }

  /** One round: every UP peer read once (those still answering the last round are skipped). */
  poll(): void {
    const status = this.daemon.status();
    for (const n of status.nodes) {
      if (n.self) continue;
      const s = this.#state(n.name);
      if (n.state !== 'UP') {
        s.info = { ...s.info, problem: `${n.name} is down` };
        continue;
      }
      if (s.busy) continue;
      let target: ApiTarget | string;
      try {
        target = this.#target(n.name);
      } catch (e) {
        target = (e as Error).message;
      }
      if (typeof target === 'string') {
        s.info = { ...s.info, problem: target };
        continue;
      }
      s.busy = true;
      void this.#read(n.name, s, target).finally(() => { s.busy = false; });
    }
  }

  async #read(node: string, s: PeerState, target: ApiTarget): Promise<void> {
    try {
      const ev = await apiRequest<{ incarnation: number; sequence: number; events: NotifyEvent[] }>(
        target, 'GET', `/api/v1/events?limit=${this.keep}${s.incarnation !== null ? `&since=${s.sequence}` : ''}`, TIMEOUT_MS);
      if (s.incarnation !== null && ev.incarnation !== s.incarnation) {
        // Its daemon restarted: its sequence started again; read everything next round.
        s.incarnation = null;
        s.sequence = 0;
      } else {
        const fresh = ev.events.filter((e) => e.sequence > s.sequence);
        s.incarnation = ev.incarnation;
        s.sequence = ev.sequence;
        s.events.push(...fresh);
        if (s.events.length > this.keep) s.events.splice(0, s.events.length - this.keep);
        if (fresh.length > 0) this.onEvents(fresh);
      }
      const c = await apiRequest<{ farms: Record<string, number | null> }>(target, 'GET', '/api/v1/console/connections', TIMEOUT_MS);
      s.info = { connections: c.farms, problem: null, atMs: Date.now() };
    } catch (e) {
      s.info = { ...s.info, problem: `${node}: ${(e as Error).message}` };
    }
  }

  /** Every peer's events kept, oldest first per peer. */
  events(): NotifyEvent[] {
    return [...this.#peers.values()].flatMap((s) => s.events);
  }

  info(): Record<string, PeerInfo> {
    return Object.fromEntries([...this.#peers].map(([n, s]) => [n, s.info]));
  }
}
