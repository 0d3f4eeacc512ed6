// The validated configuration, as the rest of croft sees it (names in camelCase, units last).
// The YAML files use snake_case keys; src/config/load.ts validates them against the schema and
// converts them to these types. Everything here is plain data: no I/O, no classes.
import type { NotifyConfig } from './notify.js';

/** cluster.yaml */
export interface ClusterConfig {
  /** Path of the file this was read from (for messages). */
  file: string;
  name: string;
  /** Shared secret for the heartbeat HMAC (from `key` or the contents of `key_file`). At least 32 bytes, private to croft (config/perms.ts). */
  key: Buffer;
  heartbeat: HeartbeatConfig;
  /** Names of the LANs, in the order of each node's `addresses`. Default: ["lan0"]. */
  lans: string[];
  nodes: NodeConfig[];
  api: ApiConfig;
  /** Directory for croft's own state on this node (dirty logs, quarantine...). Default /var/lib/croft. */
  stateDir: string;
  /** Where events go (webhook, exec hook, syslog): config/notify.ts. Default: nowhere but the history. */
  notify?: NotifyConfig;
}

export interface HeartbeatConfig {
  /** UDP port of the heartbeats, on every LAN. Default 4800. */
  port: number;
  /** A heartbeat is sent on every LAN every intervalMs. Default 200 ms. */
  intervalMs: number;
  /** A peer is down when no heartbeat arrived on any LAN for timeoutMs. Default 2000 ms (10 intervals). */
  timeoutMs: number;
}

export interface NodeConfig {
  name: string;
  /** One IPv4/IPv6 address per LAN, in the order of ClusterConfig.lans. */
  addresses: string[];
  /** Farm weight (relative share of buckets). Default 1. */
  weight: number;
}

export interface ApiConfig {
  /** Address the API listens on. Default 127.0.0.1. */
  host: string;
  /** Default 9450. */
  port: number;
  /** Bearer tokens accepted on /api/v1 (the first one is used by the CLI). */
  tokens: string[];
  /**
   * Basic-auth users accepted on /api/v1 and the console. `viewer` reads only; `operator` and
   * `admin` (the default, and what a token is) may also command. Default role admin.
   */
  users: { name: string; password: string; role?: ApiRole }[];
  /** Local API socket: root-only, no token needed (the CLI prefers it). Default /run/croft/api.sock. */
  socket: string;
  /** TLS certificate and key (PEM file paths); plain HTTP when absent. */
  tls?: { cert: string; key: string };
  /**
   * Extra names (DNS names or addresses) clients may use in the Host header, besides the listen
   * address, loopback and this node's addresses (DNS-rebinding defence). Default none.
   */
  allowedHosts?: string[];
  /** /metrics needs a credential like /api/v1 (default false: scrapers read it freely). */
  metricsAuth?: boolean;
}

export type ApiRole = 'admin' | 'operator' | 'viewer';

export type ModuleKind = 'light' | 'farm' | 'mirror';

/** One module file (modules/<name>.yaml). */
export interface ModuleConfig {
  file: string;
  name: string;
  kind: ModuleKind;
  /** Nodes that run the module. Default: every node of the cluster. */
  nodes: string[];
  scripts: ScriptsConfig;
  checkers: CheckerConfig[];
  restart: RestartPolicy;
  /** Start the module when the daemon starts (SafeKit's boot start). Default true. */
  autostart?: boolean;
  /** kind: farm only. */
  farm?: FarmConfig;
  /** kind: mirror only. */
  mirror?: MirrorConfig;
}

/** How a client is hashed to a bucket (the nft jhash input). */
export type FarmBalance = 'source-ip' | 'source-ip-port' | 'network';

/** A farm module: one virtual IP shared by its nodes, clients spread by buckets (kind: farm). */
export interface FarmConfig {
  /** The (first) virtual IP, or null for cloud mode (`vip: none`: no VIP and no filter; /health guides the provider's LB). */
  vip: string | null;
  /** Every VIP (`vip:` a list), IPv4 and IPv6 mixed, canonical text; vips[0] is `vip`. [] in cloud mode. */
  vips: string[];
  /** Interface that carries the VIP on every node (the LAN facing the clients). Default: the interface of LAN 0's address. */
  interface: string | null;
  /** `invisible`: a virtual unicast MAC never used as a source, so switches flood it (default);
   *  `multicast`: a multicast MAC (for networks that need it). */
  macMode: 'invisible' | 'multicast';
  /** The virtual MAC; default derived from the cluster and module names (locally administered). */
  virtualMac: string | null;
  /** Number of buckets B. Default 1024 (see defaults.ts for why not 256). */
  buckets: number;
  balance: FarmBalance;
  /** Only these destination ports are balanced; other traffic to the VIP is dropped. Empty: all. */
  ports: number[];
  /** jhash seed; default derived from the cluster and module names, so every node uses the same. */
  seed: number | null;
  /**
   * `majority`: a node that sees fewer than half of the farm's nodes (itself included) up takes no
   * new connection, and with exactly half, only the half holding the first node (by name) does: in
   * a partition one side serves, never both (every bucket would have two owners). `none`: every
   * side serves with the nodes it sees. Default: majority with 3 nodes or more, none with 1 or 2.
   */
  quorum: 'majority' | 'none';
  /**
   * A planned stop (`croft stop|restart`) of a node that is UP first takes it out of the farm (its
   * buckets go to the other nodes; /health answers 503) and lets the application serve the
   * connections it has for up to drainMs, ending earlier when none is left (with a VIP), then runs
   * stop_both. 0 (default): stop_both at once. Failures never drain.
   */
  drainMs: number;
  /** Per-node weights for this module (default: the node's `weight` in cluster.yaml). */
  weights: Record<string, number>;
}

/** Who may run the application alone when the two nodes cannot see each other (split brain). */
export type MirrorWitnessConfig =
  | { type: 'none' }
  /** Allowed while one of the addresses answers a ping; a yes stands validityMs. */
  | { type: 'ping'; addresses: string[]; validityMs: number }
  /** A lease in Redis (true mutual exclusion): key held for ttlMs, renewed while primary. */
  | { type: 'redis'; host: string; port: number; key: string; ttlMs: number };

/** A mirror module (kind: mirror): two nodes, replicated directories, the application on one node. */
export interface MirrorConfig {
  /** A plain address held by the primary node only, or null (`vip: none`); the first of vips. */
  vip: string | null;
  /** Every VIP (`vip:` a list), IPv4 and IPv6 mixed, canonical text; [] with `vip: none`. */
  vips: string[];
  /** Interface that carries the VIP. Default (null): the interface of the node's LAN 0 address. */
  interface: string | null;
  /** Replicated directories (absolute paths): the mirror is mounted over each one on the primary. */
  dirs: string[];
  /** Per dir (same index): paths relative to it that are not replicated, verified nor reintegrated. */
  excludes: string[][];
  /** `verify_every`: the primary compares both sides this often (null: only on demand). */
  verifyEveryMs: number | null;
  /** `resync_max_bytes_per_s`: cap on a reintegration's file data (null: none). */
  resyncMaxBytesPerS: number | null;
  /** `received`: a write returns once the peer applied it; `durable`: once the peer fsync'd it. */
  ack: 'received' | 'durable';
  /**
   * `every-change`: each change is on the peer (at `ack`) before its call returns; `on-sync`:
   * changes stream to the peer in order, and fsync, fdatasync, O_SYNC/O_DSYNC writes, msync and
   * close return once everything before them is acknowledged at `ack`.
   */
  mode: 'every-change' | 'on-sync';
  /**
   * `xattrs` (default true): extended attributes through the mount. False: every xattr call is
   * refused (EOPNOTSUPP), and writes skip the kernel's security.capability request to the server.
   */
  xattrs: boolean;
  /** Beyond this without an ack the peer is lost and the primary goes on ALONE. */
  ackTimeoutMs: number;
  /** Replication TCP port of dirs[0]; dirs[i] uses port + i. */
  port: number;
  /** Index (in cluster.yaml's lans) of the LAN that carries replication. */
  lan: number;
  /** Dirty-log zone size (a power of two from 64 KiB to 1 MiB). */
  zoneBytes: number;
  witness: MirrorWitnessConfig;
  /** Node that should run the application when both are healthy, or null. */
  primPreference: string | null;
  /** After start, how long a node that has not heard its peer waits before it may go ALONE. */
  peerWaitMs: number;
  /** Per checker name: `app` (runs on the primary, failure restarts/stops) or `dependency`. */
  checkerScopes: Record<string, 'app' | 'dependency'>;
}

export interface ScriptsConfig {
  /** Absolute paths (relative ones are resolved against the module file's directory). */
  startBoth?: string;
  stopBoth?: string;
  /** kind: mirror: run on the node that becomes primary (ALONE), after the mount and the VIP. */
  startPrim?: string;
  /** kind: mirror: run on the primary when it leaves that role, before the VIP and the unmount go. */
  stopPrim?: string;
  /** A script running longer than this is killed (SIGTERM, then SIGKILL after killGraceMs). Default 30000. */
  timeoutMs: number;
  /** Default 2000. */
  killGraceMs: number;
}

export interface RestartPolicy {
  /** At most maxloop restarts within windowMs; one more failure stops the module. Default 3. */
  maxloop: number;
  /** Default 3600000 (1 h, as SafeKit's maxloop counts). */
  windowMs: number;
}

/** What a failing checker does to its module. */
export type FailureAction = 'restart' | 'stop' | 'wait';

interface CheckerBase {
  name: string;
  /** Default 1000 ms. */
  intervalMs: number;
  /** One probe taking longer than this counts as a failure. Default 1000 ms (at most intervalMs... not required). */
  timeoutMs: number;
  /** Consecutive successes to become healthy. Default 1 (module checkers) or 2. */
  rise: number;
  /** Consecutive failures to become failed. Default 3. */
  fall: number;
  /** Default: 'restart' for tcp/http/ping/interface/script/redis; 'wait' for module. */
  onFailure: FailureAction;
}

export type CheckerConfig =
  | (CheckerBase & { type: 'tcp'; host: string; port: number })
  | (CheckerBase & { type: 'http'; url: string; expectStatus: number[] })
  | (CheckerBase & { type: 'ping'; host: string })
  | (CheckerBase & { type: 'interface'; interface: string })
  | (CheckerBase & { type: 'script'; path: string })
  /** Another module's state: on this node (`node: local`), on a named node, or on any node (`node: any`). */
  | (CheckerBase & { type: 'module'; module: string; node: string; states: string[] })
  /** A Redis server answers PING with PONG (host default 127.0.0.1, port default 6379). */
  | (CheckerBase & { type: 'redis'; host: string; port: number; password?: string; db?: number });

export interface Config {
  dir: string;
  cluster: ClusterConfig;
  modules: ModuleConfig[];
}
