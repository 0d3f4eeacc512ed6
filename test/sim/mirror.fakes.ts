// The faulty fakes a simulated node's MirrorRuntime runs on (mirror/effects.ts): its data plane
// (mount, fence, replicas, the reintegration the world finishes or breaks), its VIP, checkers,
// scripts (ended by the simulation), its witness client (the world's redis lease or ping model),
// its data record (kept across crashes) and its clock. Each asserts the order rules it can see:
// a VIP only while mounted, start_prim only with the mount and the VIP.
import assert from 'node:assert/strict';
import type { RunScriptOptions } from '../../src/module/scripts.js';
import type { MirrorDataPlanePort, MirrorEffects } from '../../mirror/effects.js';
import type { MirrorScript, Witness, WitnessContext, WitnessVerdict } from '../../mirror/types.js';
import type { MirrorWorld } from './mirror.world.js';

export function fakeEffects(world: MirrorWorld, n: string, live: () => boolean): MirrorEffects {
  const x = world.node(n);
  const never = new Promise<never>(() => {});
  const dp: MirrorDataPlanePort = {
    get mounted() { return x.dp.mounted; },
    get fenced() { return x.dp.fenced; },
    prepare: async () => {},
    mount: async () => {
      if (!live()) return never;
      x.dp.mounted = true;
      x.dp.replicas = false;
      if (world.stream?.to === n) world.dropStream('the replica stopped: its node mounts');
    },
    unmount: async () => {
      if (!live()) return never;
      x.dp.mounted = false;
      x.dp.fenced = false;
      if (world.stream?.from === n) world.stream = null;
    },
    fence: () => {
      if (!live()) return;
      x.dp.fenced = true;
      world.seen.giveUps++;
      if (world.stream?.from === n) world.stream = null; // a fenced mount sends nothing more
    },
    setWritingAlone: () => {},
    clearDirty: async () => {},
    dirtyTrusted: () => true,
    dirtyBytesAsync: async () => 0,
    dirtyEntries: () => 0,
    dirtyLogStatus: () => null,
    reintegrate: (_full: boolean) => {
      if (!live()) return never;
      const path = world.link && world.connected && world.alive(world.peerOf(n)) && world.node(world.peerOf(n)).dp.replicas;
      if (!path) return Promise.reject(new Error('the peer replica is unreachable'));
      if (world.reint) world.reint.reject(new Error('superseded'));
      return new Promise((resolve, reject) => {
        world.reint = { source: n, resolve: () => resolve([]), reject };
      });
    },
    abortReintegration: () => {
      if (world.reint?.source === n) {
        world.reint.reject(new Error('aborted'));
        world.reint = null;
      }
    },
    reintegrationStatus: () => null,
    linkConnected: () => world.link && world.connected && world.stream?.from === n,
    linkStatus: () => [],
    replicasConnected: () => world.link && world.connected && world.stream?.to === n,
    replicasRunning: () => x.dp.replicas,
    ensureReplicas: () => {
      if (live()) x.dp.replicas = true;
    },
    stopReplicas: () => {
      if (!live()) return;
      x.dp.replicas = false;
      if (world.stream?.to === n) world.dropStream('the replica stopped');
    },
    replicaStatus: () => [],
    quarantine: async () => {
      world.seen.quarantines++;
      return { folder: '/sim/quarantine', copied: 0, failed: [] };
    },
    verify: async () => ({ identical: true, differences: [] }) as never,
    close: async () => {},
  };
  return {
    dataPlane: dp,
    vip: {
      held: async () => x.vipHeld,
      add: async () => {
        if (!live()) return never;
        assert.ok(x.dp.mounted, `${n} adds the VIP while not mounted`);
        x.vipHeld = true;
        return { repeats: Promise.resolve() };
      },
      remove: async () => {
        if (!live()) return never;
        x.vipHeld = false;
      },
    },
    checkers: {
      setActive: (names) => {
        if (live()) x.activeCheckers = new Set(names);
      },
      close: async () => {},
    },
    runScript: (o: RunScriptOptions) => {
      if (!live()) return never;
      const script = o.env.CROFT_SCRIPT as MirrorScript;
      if (script === 'start_prim') {
        assert.ok(x.dp.mounted && !x.dp.fenced, `${n} starts the application while not mounted`);
        if (world.o.vip) assert.ok(x.vipHeld, `${n} starts the application before its VIP`);
      }
      return new Promise((resolve) => world.scripts.push({ node: n, script, resolve }));
    },
    witness: () => witnessClient(world, n, live),
    readRecord: () => ({ record: { ...x.record }, problem: null }),
    writeRecord: (r) => {
      if (live()) x.record = { ...r };
    },
    clock: x.clock,
  };
}

/** n's witness client: its answers fly back as messages, computed when asked. */
function witnessClient(world: MirrorWorld, n: string, live: () => boolean): Witness {
  const x = world.node(n);
  return {
    check: (ctx?: WitnessContext): Promise<WitnessVerdict> => new Promise((resolve) => {
      const v = verdict(world, n, ctx?.generation ?? 0);
      world.queue.push({ to: n, kind: 'witness', deliver: () => resolve(v), text: `witness ${v.allowed ? 'yes' : 'no'} (${v.detail})` });
    }),
    close: async () => {
      if (live() && world.redis.holder === n) world.redis.holder = null; // close() releases
      x.leaseUntilMs = 0;
    },
  };
}

/** What the witness answers n now (the ping model, or the redis lease and generations). */
function verdict(world: MirrorWorld, n: string, generation: number): WitnessVerdict {
  const x = world.node(n);
  if (world.o.witness === 'ping') {
    return x.pingReach ? { allowed: true, validUntilMs: world.nowMs + world.o.pingValidityMs, detail: 'router answered' } : { allowed: false, validUntilMs: 0, detail: 'no answer' };
  }
  const r = world.redis;
  if (!r.up) {
    // As RedisWitness: an error neither extends nor cuts short the lease held, and allows only a
    // generation registered before.
    const allowed = r.holder === n && world.nowMs < x.leaseUntilMs && (r.generations[n] ?? 0) >= generation;
    return { allowed, validUntilMs: allowed ? x.leaseUntilMs : 0, detail: 'redis unreachable' };
  }
  if (r.holder !== null && r.expiresMs <= world.nowMs) r.holder = null;
  const peerGeneration = r.generations[world.peerOf(n)];
  const extra = peerGeneration !== undefined ? { peerGeneration } : {};
  if (r.holder !== null && r.holder !== n) return { allowed: false, validUntilMs: 0, detail: `lease ${r.holder}`, ...extra };
  r.holder = n;
  r.expiresMs = world.nowMs + world.o.ttlMs;
  r.generations[n] = Math.max(r.generations[n] ?? 0, generation);
  x.leaseUntilMs = world.nowMs + world.o.ttlMs - world.o.marginMs;
  return { allowed: true, validUntilMs: x.leaseUntilMs, detail: `lease ${n} g${generation}`, ...extra };
}
