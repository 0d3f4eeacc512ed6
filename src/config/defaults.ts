// Default values of the configuration, each with its reason (memberlist's config is the model).

export const defaults = {
  heartbeat: {
    /** Unprivileged, unassigned by IANA, easy to open in a firewall. */
    port: 4800,
    /** Five heartbeats a second: cheap on any LAN, and a lost one does not matter. */
    intervalMs: 200,
    /** Ten intervals: survives a few lost packets and a GC pause, detects a dead node in 2 s. */
    timeoutMs: 2000,
  },
  /** A single LAN unless told otherwise; two are better (a cut cable is not a dead node). */
  lans: ['lan0'],
  node: { weight: 1 },
  api: {
    /** Local only until someone opens it on purpose (with TLS and credentials). */
    host: '127.0.0.1',
    port: 9450,
    /** Under /run: gone at reboot, root-only, so the local CLI needs no token. */
    socket: '/run/croft/api.sock',
  },
  stateDir: '/var/lib/croft',
  module: {
    /** SafeKit's boot start: a module configured on a node runs when that node starts. */
    autostart: true,
  },
  scripts: {
    /** Long enough for a database to stop cleanly; a hung script still ends. */
    timeoutMs: 30_000,
    /** Time between SIGTERM and SIGKILL for a script past its timeout. */
    killGraceMs: 2_000,
  },
  restart: {
    /** SafeKit's maxloop: three restarts, then the module stops rather than flapping. */
    maxloop: 3,
    /** The window maxloop counts in (1 h, as SafeKit). */
    windowMs: 3_600_000,
  },
  checker: {
    intervalMs: 1_000,
    timeoutMs: 1_000,
    /** Two successes before healthy avoids flapping on a half-started service... */
    rise: 2,
    /** ...but a module dependency is trusted at its first good answer (its own checkers already debounce). */
    riseModule: 1,
    fall: 3,
    onFailure: 'restart',
    /** A missing dependency is not a reason to restart: wait for it. */
    onFailureModule: 'wait',
    expectStatus: [200],
    moduleNode: 'local',
    /** A redis checker probes the node's own server on Redis's standard port unless told otherwise. */
    redisHost: '127.0.0.1',
    redisPort: 6379,
  },
  farm: {
    /** 1024 buckets: rendezvous hashing gives each node its share only within about
     *  ±sqrt(B·p(1-p))/(B·p): at 256 buckets a node of three got 37.9 % instead of 33.3 % (and +22 %
     *  at weights 1:2:1); at 1024 the deviation is about half. An nft set of 1024 elements costs
     *  nothing more to update than one of 256 (one transaction, measured ~17 ms either way). */
    buckets: 1024,
    /** nft's set of buckets and the CLI stay small; 4096 already gives 0.02 % per bucket. */
    bucketsMax: 4096,
    /** Each client address sticks to one node, which keeps sessions without shared state. */
    balance: 'source-ip',
    /** A unicast MAC that no node uses as a source: switches never learn it and flood it to all. */
    macMode: 'invisible',
    /** null: the farm driver uses the interface that holds the node's LAN 0 address. */
    interface: null,
    /** A planned stop does not wait for clients unless asked: `croft stop` stays immediate. */
    drainMs: 0,
    // seed and virtual_mac: derived from the cluster and module names (src/config/farm.ts), so every
    // node agrees without configuration and two farms of one cluster differ.
  },
  mirror: {
    /** Synchronous replication is there for failover; a forwarded fsync still reaches the peer's disk. */
    ack: 'received',
    /**
     * The local-disk contract (README, mirror): changes stream to the peer, fsync/O_SYNC/msync/close
     * wait for all before them. Every lab suite that kills the PRIM under acknowledged writes
     * (failover, PostgreSQL, MariaDB, Redis, reintegration, split brain) passed unchanged in it.
     * 'every-change' (every change on the peer before its call returns) is the stronger one.
     */
    mode: 'on-sync',
    xattrs: true,
    /** A peer that does not ack within 2 s is treated as lost: the primary goes on ALONE rather than hang. */
    ackTimeoutMs: 2_000,
    /** Next to the heartbeat port (4800); dir i uses port + i. */
    port: 4810,
    /** 256 KiB zones: a small dirty log for large files, little excess copied for small writes. */
    zoneBytes: 262_144,
    zoneBytesChoices: [65_536, 131_072, 262_144, 524_288, 1_048_576],
    /** Ping: a yes stands 3 s (the runtime checks every third of it). */
    pingValidityMs: 3_000,
    /** Redis: the survivor of a crashed primary takes over at most this long after the last renewal. */
    redisTtlMs: 5_000,
    redisPort: 6379,
    /** Two heartbeat timeouts: two nodes started together see each other before either goes ALONE. */
    peerWaitTimeouts: 2,
  },
} as const;

/** States in which a module is ready to serve, by kind: the default `states` of a module checker. */
export const readyStates = {
  light: ['UP'],
  farm: ['UP'],
  mirror: ['PRIM', 'ALONE'],
} as const;
