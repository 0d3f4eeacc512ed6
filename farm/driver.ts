// The farm driver of one module on this node: the VIP, the ARP responder and the nftables filter,
// driven by the module's state and the cluster's view. Decisions are pure (farm/members.ts,
// farm/assign.ts); this file does the I/O, in the order the kernel needs:
//   start (STOP → WAIT): filter with no bucket first (the node accepts no new connection), then the
//     VIP, then the ARP responder and gratuitous ARP: clients may send here from now on.
//   members change: the owned set is replaced in one nft transaction.
//   stop (→ STOP): the ARP responder and the VIP go first, then the filter.
import type { ClusterConfig, ModuleConfig } from '../src/config/types.js';
import { CroftError } from '../src/errors.js';
import type { Logger } from '../src/log/logger.js';
import { ArpResponder, arpSendGratuitous } from '../src/native/index.js';
import { interfaceOf } from '../src/net/interfaces.js';
import { assignBuckets, bucketsOf, loadOf } from './assign.js';
import { familyOf, nftHashExpr } from './hash-input.js';
import { farmMembers, membersKey, type NodeModuleView } from './members.js';
import { NftFarm } from './nft-apply.js';
import type { NftFarmSpec } from './nft-render.js';
import { addVip, removeVip, type VipSpec } from './vip.js';

export interface FarmStatus {
  active: boolean;
  vip: string | null;
  ifname: string | null;
  members: string[];
  ownedBuckets: number;
  buckets: number;
  load: Record<string, number>;
}

export class FarmDriver {
  readonly module: ModuleConfig;
  private readonly self: string;
  private readonly cluster: ClusterConfig;
  private readonly log: Logger;
  private readonly nft = new NftFarm();
  private arp: ArpResponder | null = null;
  private spec: NftFarmSpec | null = null;
  private key: string | null = null;
  private members: string[] = [];
  private map: string[] = [];
  private owned: number[] = [];
  private renewTimer: NodeJS.Timeout | null = null;
  /** Serializes start/update/stop: each waits for the previous one. */
  private queue: Promise<void> = Promise.resolve();

  constructor(module: ModuleConfig, self: string, cluster: ClusterConfig, log: Logger) {
    const farm = module.farm;
    if (!farm || farm.vip === null) throw new CroftError('CROFT_ERR_CONFIG', `module ${module.name} is not a farm with a VIP`);
    this.module = module;
    this.self = self;
    this.cluster = cluster;
    this.log = log;
  }

  private enqueue(what: string, job: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(job).catch((err: unknown) => {
      this.log.error({ event: 'farm_error', module: this.module.name, what, err: (err as Error).message,
        code: (err as { code?: string }).code }, `farm ${this.module.name}: ${what} failed: ${(err as Error).message}`);
    });
    return this.queue;
  }

  private buildSpec(): NftFarmSpec {
    const farm = this.module.farm!;
    const vip = farm.vip!;
    const self = this.cluster.nodes.find((n) => n.name === this.self)!;
    const ifname = farm.interface ?? interfaceOf(self.addresses[0]!);
    if (!ifname) {
      throw new CroftError('CROFT_ERR_CONFIG', `farm ${this.module.name}: no interface holds ${self.addresses[0]} (LAN 0 of ${this.self}); set \`interface\` in ${this.module.file}`);
    }
    return {
      table: `croft_${this.module.name.replace(/[^A-Za-z0-9_]/g, '_')}`,
      ifname,
      vip,
      virtualMac: farm.virtualMac!,
      macMode: farm.macMode,
      buckets: farm.buckets,
      balance: farm.balance,
      ports: farm.ports,
      ownedBuckets: [],
      hashExpr: nftHashExpr(farm.balance, familyOf(vip), farm.buckets, farm.seed!),
      ownedTimeoutMs: this.cluster.heartbeat.timeoutMs,
    };
  }

  private vipSpec(): VipSpec {
    return { ifname: this.spec!.ifname, vip: this.spec!.vip, virtualMac: this.spec!.virtualMac };
  }

  /** The module leaves STOP: filter (no bucket yet), VIP, ARP. */
  start(): Promise<void> {
    return this.enqueue('start', async () => {
      if (this.spec) return;
      const spec = this.buildSpec();
      await this.nft.apply(spec);
      this.spec = spec;
      this.key = null;
      await addVip(this.vipSpec());
      if (familyOf(spec.vip) === 'ip') {
        this.arp = new ArpResponder(spec.ifname);
        this.arp.setAddresses([{ ip: spec.vip, mac: spec.virtualMac }]);
        // Tell switches and neighbours where the VIP is now (a returning node, a new MAC).
        await arpSendGratuitous(spec.ifname, spec.vip, spec.virtualMac, 3, 100);
      }
      // Owned buckets expire in the kernel unless renewed (nft-render's ownedTimeoutMs): renew
      // them at the heartbeat's pace, so they lapse about when the peers declare this node down.
      // Every ~10 s, a reconcile instead: tables removed or edited behind croft's back are put back.
      const reconcileEvery = Math.max(1, Math.round(10_000 / this.cluster.heartbeat.intervalMs));
      let ticks = 0;
      let renewing = false; // one renewal in the queue at most: nft being slow must not pile them up
      this.renewTimer = setInterval(() => {
        if (renewing) return;
        renewing = true;
        const reconcile = ++ticks % reconcileEvery === 0;
        void this.enqueue(reconcile ? 'reconcile' : 'renew', async () => {
          if (reconcile) {
            const r = await this.nft.reconcile();
            if (r.fixed !== 'nothing') {
              this.log.warn({ event: 'farm_reconcile', module: this.module.name, fixed: r.fixed, reasons: r.reasons },
                `farm ${this.module.name}: the kernel's rules differed from croft's (${r.reasons.join('; ')}): fixed`);
            }
          }
          if (this.owned.length) await this.nft.setOwned(this.owned);
        }).finally(() => { renewing = false; });
      }, this.cluster.heartbeat.intervalMs);
      this.log.info({ event: 'farm_start', module: this.module.name, vip: spec.vip, ifname: spec.ifname, mac: spec.virtualMac },
        `farm ${this.module.name}: VIP ${spec.vip} on ${spec.ifname} (virtual MAC ${spec.virtualMac})`);
    });
  }

  /** Recompute the members from the view; replace the owned set when they changed. Cheap when nothing changed. */
  update(views: readonly NodeModuleView[], cause: string): Promise<void> {
    const members = farmMembers(this.module, this.cluster.nodes, views);
    const key = membersKey(members);
    if (key === this.key || !this.spec) return this.queue;
    this.key = key;
    return this.enqueue('update', async () => {
      if (!this.spec) return;
      const map = assignBuckets(this.module.farm!.buckets, members);
      const owned = bucketsOf(map, this.self);
      try {
        await this.nft.setOwned(owned);
      } catch (err) {
        this.key = null; // the next view tick tries again
        throw err;
      }
      this.owned = owned;
      this.map = map;
      this.members = members.map((m) => m.name);
      this.log.info({ event: 'farm_buckets', module: this.module.name, members: this.members, owned: owned.length, cause },
        `farm ${this.module.name}: members [${this.members.join(' ')}], ${owned.length}/${map.length} buckets here (${cause})`);
    });
  }

  /** The module reached STOP: ARP and VIP first, then the filter. */
  stop(): Promise<void> {
    return this.enqueue('stop', async () => {
      if (!this.spec) return;
      if (this.renewTimer) clearInterval(this.renewTimer);
      this.renewTimer = null;
      this.owned = [];
      this.arp?.close();
      this.arp = null;
      await removeVip(this.vipSpec());
      await this.nft.remove();
      this.spec = null;
      this.key = null;
      this.members = [];
      this.map = [];
      this.log.info({ event: 'farm_stop', module: this.module.name }, `farm ${this.module.name}: VIP and filter removed`);
    });
  }

  status(): FarmStatus {
    return {
      active: this.spec !== null,
      vip: this.module.farm?.vip ?? null,
      ifname: this.spec?.ifname ?? null,
      members: this.members,
      ownedBuckets: this.map.filter((n) => n === this.self).length,
      buckets: this.module.farm?.buckets ?? 0,
      load: loadOf(this.map),
    };
  }
}
