// The farm driver: the real effects on this node's kernel that farm/runtime.ts is generic over:
// the nftables filter (farm/nft-apply.ts), the VIP (farm/vip.ts), the ARP responder and gratuitous
// ARP (the Rust addon), and the connections to the VIP (/proc). No decision and no order here: the
// runtime calls these in the order farm/plan.ts gives.
import type { ClusterConfig, ModuleConfig } from '../src/config/types.js';
import { CroftError } from '../src/errors.js';
import { ArpResponder, arpSendGratuitous } from '../src/native/index.js';
import { interfaceOf } from '../src/net/interfaces.js';
import { liveConnectionsTo } from './connections.js';
import { familyOf, nftHashExpr } from './hash-input.js';
import { NftFarm } from './nft-apply.js';
import type { NftFarmSpec } from './nft-render.js';
import { OWNED_LAPSE_MS, type FarmEffects } from './runtime.js';
import { addVip, removeVip, type VipSpec } from './vip.js';

export class KernelFarmEffects implements FarmEffects {
  readonly #module: ModuleConfig;
  readonly #self: string;
  readonly #cluster: ClusterConfig;
  /**
   * Owner mode: nftables through libnftables in this process, the netdev table owned by its
   * socket (farm/nft-apply.ts): the kernel takes this node out of the farm the moment the daemon
   * dies, and no `nft` is spawned, ever. The buckets lapse after OWNED_LAPSE_MS (30 s) unless the
   * 10 s reconcile renews them: for a daemon that is stuck rather than dead.
   */
  readonly #nft = new NftFarm({ owner: true });
  #arp: ArpResponder | null = null;
  /** Built at the first filter install (the interface is looked up then), kept for the VIP's removal. */
  #spec: NftFarmSpec | null = null;

  constructor(module: ModuleConfig, self: string, cluster: ClusterConfig) {
    const farm = module.farm;
    if (!farm || farm.vip === null) throw new CroftError('CROFT_ERR_CONFIG', `module ${module.name} is not a farm with a VIP`);
    this.#module = module;
    this.#self = self;
    this.#cluster = cluster;
  }

  /** The interface the VIP is on, once known. */
  ifname(): string | null {
    return this.#spec?.ifname ?? null;
  }

  #buildSpec(): NftFarmSpec {
    const farm = this.#module.farm!;
    const vip = farm.vip!;
    const self = this.#cluster.nodes.find((n) => n.name === this.#self)!;
    const ifname = farm.interface ?? interfaceOf(self.addresses[0]!);
    if (!ifname) {
      throw new CroftError('CROFT_ERR_CONFIG', `farm ${this.#module.name}: no interface holds ${self.addresses[0]} (LAN 0 of ${this.#self}); set \`interface\` in ${this.#module.file}`);
    }
    return {
      table: `croft_${this.#module.name.replace(/[^A-Za-z0-9_]/g, '_')}`,
      ifname,
      vip,
      virtualMac: farm.virtualMac!,
      macMode: farm.macMode,
      buckets: farm.buckets,
      balance: farm.balance,
      ports: farm.ports,
      ownedBuckets: [],
      hashExpr: nftHashExpr(farm.balance, familyOf(vip), farm.buckets, farm.seed!),
      ownedTimeoutMs: OWNED_LAPSE_MS,
    };
  }

  #vipSpec(): VipSpec {
    const spec = this.#spec ?? this.#buildSpec();
    return { ifname: spec.ifname, vip: spec.vip, virtualMac: spec.virtualMac };
  }

  async installFilter(): Promise<void> {
    const spec = this.#spec ?? this.#buildSpec();
    this.#spec = spec;
    await this.#nft.apply({ ...spec, ownedBuckets: [] });
  }

  async applyBuckets(owned: readonly number[], takeover: readonly number[]): Promise<void> {
    await this.#nft.setOwned(owned, takeover);
  }

  reconcileFilter(): Promise<{ fixed: string; reasons: string[] }> {
    return this.#nft.reconcile();
  }

  async removeFilter(): Promise<void> {
    await this.#nft.remove((this.#spec ?? this.#buildSpec()).table);
  }

  addVip(): Promise<void> {
    return addVip(this.#vipSpec());
  }

  removeVip(): Promise<void> {
    return removeVip(this.#vipSpec());
  }

  async announce(): Promise<void> {
    const spec = this.#spec ?? this.#buildSpec();
    this.#arp?.close();
    this.#arp = new ArpResponder(spec.ifname);
    this.#arp.setAddresses([{ ip: spec.vip, mac: spec.virtualMac }]);
    // Tell switches and neighbours where the VIP is now (a returning node, a new MAC).
    await arpSendGratuitous(spec.ifname, spec.vip, spec.virtualMac, 3, 100);
  }

  async silence(): Promise<void> {
    this.#arp?.close();
    this.#arp = null;
  }

  countConnections(): number {
    return liveConnectionsTo(this.#module.farm!.vip!);
  }
}
