// What MirrorRuntime does to the world, as parameters (TigerBeetle's replica generic over its
// world): the replication data plane, the VIP, scripts, checkers, the witness, the data record and
// the clock. The daemon gives it the real ones (realMirrorEffects); the simulator
// (test/sim/mirror.world.ts) gives it faulty fakes and a clock that moves only when told, and so
// drives the very runtime the daemon runs.
import path from 'node:path';
import { systemClock, type Clock } from '../src/clock.js';
import type { ClusterConfig, ModuleConfig } from '../src/config/types.js';
import { CroftError } from '../src/errors.js';
import { CheckerRunner, runnerCheckers, type ModuleStateGetter } from '../src/module/checkers/index.js';
import { runScript, type RunScriptOptions, type ScriptResult } from '../src/module/scripts.js';
import type { ModuleLogger } from '../src/module/types.js';
import { interfaceOf } from '../src/net/interfaces.js';
import { readDataRecord, writeDataRecord, type DataRecord } from './data-record.js';
import { MirrorDataPlane } from './driver-dataplane.js';
import { addMirrorVip, hasAddress, removeMirrorVip } from './driver-vip.js';
import type { Witness } from './types.js';
import { PingWitness, RedisWitness } from './witness.js';

/** The part of the data plane (driver-dataplane.ts) the runtime uses. */
export type MirrorDataPlanePort = Pick<MirrorDataPlane,
  | 'mounted' | 'fenced' | 'prepare' | 'mount' | 'unmount' | 'fence' | 'setWritingAlone' | 'clearDirty'
  | 'dirtyTrusted' | 'dirtyBytesAsync' | 'dirtyEntries' | 'dirtyLogStatus'
  | 'reintegrate' | 'abortReintegration' | 'reintegrationStatus'
  | 'linkConnected' | 'linkStatus' | 'replicasConnected' | 'replicasRunning' | 'ensureReplicas' | 'stopReplicas' | 'replicaStatus'
  | 'quarantine' | 'verify' | 'close'>;

export type { Clock } from '../src/clock.js';

/** The mirror's VIP on this node's interface (only called when the module has a VIP). */
export interface MirrorVipPort {
  held(): Promise<boolean>;
  /** Adds it and announces it; `repeats` are the later gratuitous ARPs, sent while stillHeld(). */
  add(stillHeld: () => boolean): Promise<{ repeats: Promise<void> }>;
  remove(): Promise<void>;
}

/** The module's checkers: which run, and closing them. Results come back through MirrorHooks.probe. */
export interface MirrorCheckersPort {
  setActive(names: Iterable<string>): void;
  close(): Promise<void>;
}

export interface MirrorEffects {
  dataPlane: MirrorDataPlanePort;
  vip: MirrorVipPort;
  checkers: MirrorCheckersPort;
  runScript(o: RunScriptOptions): Promise<ScriptResult>;
  /** A new witness client of the module's kind (ping or redis). */
  witness(): Witness;
  readRecord(): { record: DataRecord; problem: string | null };
  writeRecord(r: DataRecord): void;
  clock: Clock;
}

/** What the effects report back into the runtime. */
export interface MirrorHooks {
  /** The data plane lost the peer (ack timeout, stream closed). */
  peerLost(reason: string): void;
  /** A checker's probe result. */
  probe(checker: string, result: { ok: boolean; detail: string }): void;
}

export interface RealEffectsOptions {
  module: ModuleConfig;
  node: string;
  cluster: ClusterConfig;
  getModuleState: ModuleStateGetter;
  logger: ModuleLogger;
  stateDir: string;
}

/** The effects of a mirror module on a real node (the daemon's). */
export function realMirrorEffects(o: RealEffectsOptions, hooks: MirrorHooks): MirrorEffects {
  const mirror = o.module.mirror!;
  const peer = o.module.nodes.find((n) => n !== o.node)!;
  const addressOf = (n: string) => {
    const a = o.cluster.nodes.find((x) => x.name === n)?.addresses[mirror.lan];
    if (!a) throw new CroftError('CROFT_ERR_CONFIG', `node ${n} has no address on LAN ${o.cluster.lans[mirror.lan] ?? mirror.lan}`);
    return a;
  };
  const dataPlane = new MirrorDataPlane({
    module: o.module.name,
    dirs: mirror.dirs,
    stateDir: o.stateDir,
    host: addressOf(o.node),
    peerHost: addressOf(peer),
    peerAddresses: o.cluster.nodes.find((x) => x.name === peer)?.addresses ?? [],
    port: mirror.port,
    key: o.cluster.key,
    ack: mirror.ack,
    mode: mirror.mode,
    xattrs: mirror.xattrs,
    ackTimeoutMs: mirror.ackTimeoutMs,
    zoneBytes: mirror.zoneBytes,
    resyncMaxBytesPerS: mirror.resyncMaxBytesPerS,
    excludes: mirror.excludes,
    onPeerLost: (reason) => hooks.peerLost(reason),
    log: o.logger,
  });
  const ifname = (): string => {
    if (mirror.interface) return mirror.interface;
    const self = o.cluster.nodes.find((n) => n.name === o.node)!;
    const name = interfaceOf(self.addresses[0]!);
    if (!name) throw new CroftError('CROFT_ERR_VIP', `no interface holds ${self.addresses[0]} (LAN 0 of ${o.node}); set interface in ${o.module.file}`);
    return name;
  };
  const vips = mirror.vips.length > 0 ? mirror.vips : mirror.vip ? [mirror.vip] : [];
  const env = { CROFT_NODE: o.node, CROFT_MODULE: o.module.name, CROFT_CLUSTER: o.cluster.name };
  const checkers = new CheckerRunner(
    runnerCheckers(o.module.checkers, {
      getModuleState: o.getModuleState,
      env,
      onScriptOutput: (checker, stream, line) => o.logger.info({ module: o.module.name, checker, stream }, line),
    }),
    (checker, result) => hooks.probe(checker, result),
  );
  const recordFile = path.join(o.stateDir, 'data.json');
  return {
    dataPlane,
    vip: {
      held: () => hasAddress(ifname(), vips),
      add: (stillHeld) => addMirrorVip(ifname(), vips, stillHeld),
      remove: () => removeMirrorVip(ifname(), vips),
    },
    checkers,
    runScript,
    witness: () => {
      const w = mirror.witness;
      if (w.type === 'ping') return new PingWitness({ addresses: w.addresses, validityMs: w.validityMs });
      if (w.type === 'redis') return new RedisWitness({ host: w.host, port: w.port, key: w.key, ttlMs: w.ttlMs, node: o.node });
      throw new CroftError('CROFT_ERR_CONFIG', `mirror ${o.module.name} has no witness`);
    },
    readRecord: () => readDataRecord(recordFile),
    writeRecord: (r) => writeDataRecord(recordFile, r),
    clock: systemClock,
  };
}
