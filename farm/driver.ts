// The farm driver: the real effects on this node's kernel that farm/runtime.ts is generic over:
// the nftables filter (farm/nft-apply.ts), the VIPs (farm/vip.ts), the ARP responder and gratuitous
// ARP (the Rust addon; for an IPv6 VIP neighbour advertisements), and the connections to the VIPs
// (/proc). A module may have several VIPs, IPv4 and IPv6: each effect covers them all. No decision
// and no order here: the runtime calls these in the order farm/plan.ts gives.
import type { ClusterConfig, ModuleConfig } from '../src/config/types.js';
import { CroftError } from '../src/errors.js';
import { ArpResponder, arpSendGratuitous } from '../src/native/index.js';
import { interfaceOf, macOf } from '../src/net/interfaces.js';
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
    const vips = farm.vips.length > 0 ? farm.vips : [vip];
    const self = this.#cluster.nodes.find((n) => n.name === this.#self)!;
    const ifname = farm.interface ?? interfaceOf(self.addresses[0]!);
    if (!ifname) {
      throw new CroftError('CROFT_ERR_CONFIG', `farm ${this.#module.name}: no interface holds ${self.addresses[0]} (LAN 0 of ${this.#self}); set \`interface\` in ${this.#module.file}`);
    }
    const families = [...new Set(vips.map(familyOf))];
    return {
      table: `croft_${this.#module.name.replace(/[^A-Za-z0-9_]/g, '_')}`,
      ifname,
      vip,
      vips,
      // The node's own MAC, for the rewrite of its solicitations sent from an IPv6 VIP (nft-render).
      ...(families.includes('ip6') ? { ownMac: macOf(ifname) } : {}),
      virtualMac: farm.virtualMac!,
      macMode: farm.macMode,
      buckets: farm.buckets,
      balance: farm.balance,
      ports: farm.ports,
      ownedBuckets: [],
      hashExpr: nftHashExpr(farm.balance, familyOf(vip), farm.buckets, farm.seed!),
      hashExprs: Object.fromEntries(families.map((f) => [f, nftHashExpr(farm.balance, f, farm.buckets, farm.seed!)])),
      ownedTimeoutMs: OWNED_LAPSE_MS,
    };
  }

  #vipSpecs(): VipSpec[] {
    const spec = this.#spec ?? this.#buildSpec();
    return (spec.vips ?? [spec.vip]).map((vip) => ({ ifname: spec.ifname, vip, virtualMac: spec.virtualMac }));
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

  async addVip(): Promise<void> {
    for (const v of this.#vipSpecs()) await addVip(v);
  }

  async removeVip(): Promise<void> {
    for (const v of this.#vipSpecs()) await removeVip(v);
  }

  async announce(): Promise<void> {
    const spec = this.#spec ?? this.#buildSpec();
    this.#arp?.close();
    this.#arp = new ArpResponder(spec.ifname);
    const vips = spec.vips ?? [spec.vip];
    // ARP for the IPv4 VIPs, neighbour solicitations for the IPv6 ones.
    this.#arp.setAddresses(vips.map((ip) => ({ ip, mac: spec.virtualMac })));
    // Tell switches and neighbours where the VIPs are now (a returning node, a new MAC): gratuitous
    // ARP, or unsolicited neighbour advertisements with the override flag.
    await Promise.all(vips.map((ip) => arpSendGratuitous(spec.ifname, ip, spec.virtualMac, 3, 100)));
  }

  async silence(): Promise<void> {
    this.#arp?.close();
    this.#arp = null;
  }

  countConnections(): number {
    const farm = this.#module.farm!;
    return (farm.vips.length > 0 ? farm.vips : [farm.vip!]).reduce((n, vip) => n + liveConnectionsTo(vip), 0);
  }
}
