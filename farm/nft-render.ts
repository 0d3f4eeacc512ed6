// The farm's nftables rule set, rendered as `nft -f` text by pure code (no I/O).
//
// Static rules, dynamic sets (keepalived's nftables code): the tables below only change when the
// module's configuration changes; moving buckets is a change of the elements of the `owned` set,
// in one `nft -f` transaction (flush set + add element), which the kernel applies atomically.
//
// croft owns one table per family, all named spec.table:
//   netdev  ingress on the interface: frames to the virtual MAC get `meta pkttype set host`, or IP
//           input drops them as PACKET_OTHERHOST (ip_rcv_core / ipv6_rcv). In the daemon it is an
//           owner table (spec.owner): it belongs to the daemon's netlink socket and the kernel
//           deletes it when the daemon dies, so the node stops taking the VIP's frames at once.
//   ip|ip6  prerouting at priority -150, after conntrack (-200): a packet to the VIP that is not
//           PACKET_HOST is dropped first (the netdev table is gone: a multicast virtual MAC must not
//           reach the sets, nor the RSTs, of a dead daemon); packets of connections this node
//           tracks pass; a new connection passes when its bucket is in @owned; the rest is dropped,
//           never rejected, since another node answers it. One exception: the buckets this node
//           took over from a node that died (@takeover, farm/plan.ts) answer a TCP packet of a
//           connection nobody tracks any more with a RST, so its client reconnects at once.
//   arp     (IPv4) output: the kernel's own ARP packets with the VIP as sender are dropped; the ARP
//           responder of the native addon answers with the virtual MAC through a packet socket,
//           which no arp hook sees. For IPv6 the ip6 table's output chain does the same for
//           neighbour discovery: it drops the kernel's neighbour advertisements for the VIP (the
//           responder answers solicitations with the virtual MAC), and it rewrites the kernel's own
//           solicitations sent from the VIP (to resolve a client it has no entry for) so that
//           their source link-layer option is the virtual MAC, not the node's: a client learns the
//           VIP's MAC from any solicitation the VIP sends it (RFC 4861 7.2.3), and one node's MAC
//           would take every later packet of that client to that node alone. nft cannot update
//           the ICMPv6 checksum of a raw-payload write, so the rewrite is checksum-neutral (as
//           NPTv6, RFC 6296): the reserved word of the solicitation, which receivers ignore,
//           takes the difference (ndSourceRewrite).
// A module may have several VIPs, IPv4 and IPv6 mixed: one ip and/or ip6 table, each matching all
// of its family's VIPs, with the same buckets (the same sets, the same seed and modulus).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { FarmBalance, FarmConfig } from '../src/config/types.js';
import { familyOf, type NftFamily } from './hash-input.js';

export type NftTableFamily = 'netdev' | 'ip' | 'ip6' | 'arp';
export type MacMode = FarmConfig['macMode'];

export interface NftFarmSpec {
  /** Name of every croft table of this module, e.g. `croft_web` (one per family). */
  table: string;
  /** Interface that carries the VIP (the LAN facing the clients). */
  ifname: string;
  /** The VIP, IPv4 or IPv6 (the first of vips). */
  vip: string;
  /** Every VIP of the module, IPv4 and IPv6 mixed, `vip` among them; absent: [vip]. */
  vips?: string[];
  /**
   * The interface's own MAC, for the rewrite of the kernel's solicitations sent from an IPv6 VIP
   * (see the top of this file). Without it no rewrite is rendered: tools and tests only.
   */
  ownMac?: string;
  /** aa:bb:cc:dd:ee:ff */
  virtualMac: string;
  macMode: MacMode;
  /** B: the modulus of hashExpr. */
  buckets: number;
  balance: FarmBalance;
  /** Only these destination ports (tcp and udp) are served; empty: every port. */
  ports: number[];
  /** This node's buckets, each in [0, buckets). */
  ownedBuckets: number[];
  /**
   * Those of ownedBuckets taken over from a node that died (not moved by a planned leave): a TCP
   * packet that is not an opening SYN and that no connection here tracks is answered with a RST
   * instead of dropped. Empty when absent.
   */
  takeoverBuckets?: number[];
  /** The nft expression giving a packet's bucket (farm/hash-input.ts nftHashExpr), e.g. `jhash ip saddr mod 256 seed 0x1234abcd`. */
  hashExpr: string;
  /**
   * With VIPs of both families: the expression of each (hashExpr is the one of `vip`'s family),
   * the same balance, modulus and seed, so a client gets the same bucket count either way.
   */
  hashExprs?: Partial<Record<NftFamily, string>>;
  /**
   * When set, the buckets of both sets expire from the kernel after this long unless renewed
   * (nft-apply's reconcile renews them): a dead man's switch for a daemon that is alive but stuck
   * (SIGSTOP, a wedged event loop), which an owner table does not catch since its socket stays
   * open. The daemon sets 30 s, renewed every 10 s (farm/runtime.ts); a dead daemon is the owner
   * table's business, at once.
   */
  ownedTimeoutMs?: number;
  /**
   * The netdev table gets `flags owner`: it belongs to the netlink socket that creates it and the
   * kernel deletes it when that socket closes (Linux >= 5.12). Only for a driver that holds its
   * socket as long as the daemon lives (nft-apply's owner mode); through a short-lived `nft`
   * the table would vanish at once. The ip/ip6 and arp tables are never owned: the arp table must
   * outlive a dead daemon (the VIP stays on the interface, and the kernel would answer ARP for it
   * with the node's own MAC), and the ip/ip6 tables only ever narrow what the node accepts.
   */
  owner?: boolean;
}

/** The buckets of a spec's takeover set: those of takeoverBuckets this node owns (sorted). */
function takeoverOf(spec: Pick<NftFarmSpec, 'buckets' | 'ownedBuckets' | 'takeoverBuckets'>): number[] {
  const owned = new Set(spec.ownedBuckets);
  return checkBuckets(spec.buckets, spec.takeoverBuckets ?? []).filter((b) => owned.has(b));
}

export interface NftTableRef {
  family: NftTableFamily;
  name: string;
}

/** The set of this node's buckets, in the ip/ip6 table. */
export const OWNED_SET = 'owned';
/** The set of the buckets this node took over from a dead node, in the ip/ip6 table. */
export const TAKEOVER_SET = 'takeover';

/** What a table must hold, so a driver can tell whether the kernel's copy is the one rendered. */
export interface NftTableShape extends NftTableRef {
  /** Carried as the comment of the table's first rule (nft 1.0.6 has no table comment in its JSON). */
  fingerprint: string;
  /** chain name -> number of rules. */
  chains: Record<string, number>;
}

const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** Every VIP of a spec (vips, else [vip]), `vip` first. */
export function vipsOfSpec(spec: Pick<NftFarmSpec, 'vip' | 'vips'>): string[] {
  const all = spec.vips ?? [spec.vip];
  assert.ok(all.includes(spec.vip), `vips [${all.join(', ')}] must include vip ${spec.vip}`);
  const i = all.indexOf(spec.vip);
  return [spec.vip, ...all.slice(0, i), ...all.slice(i + 1)];
}

/** The families of a spec's VIPs: the one of `vip` first. */
export function familiesOf(spec: Pick<NftFarmSpec, 'vip' | 'vips'>): NftFamily[] {
  return [...new Set(vipsOfSpec(spec).map(familyOf))];
}

/** The VIPs of one family. */
function vipsIn(spec: Pick<NftFarmSpec, 'vip' | 'vips'>, family: NftFamily): string[] {
  return vipsOfSpec(spec).filter((v) => familyOf(v) === family);
}

/** The tables a spec renders, in creation order. */
export function tablesOf(spec: Pick<NftFarmSpec, 'table' | 'vip' | 'vips'>): NftTableRef[] {
  const families = familiesOf(spec);
  const refs: NftTableRef[] = [{ family: 'netdev', name: spec.table }, ...families.map((family) => ({ family, name: spec.table }))];
  if (families.includes('ip')) refs.push({ family: 'arp', name: spec.table });
  return refs;
}

/** Every table croft may have made for a module name, whatever the VIP's family (for removal). */
export function allTablesNamed(table: string): NftTableRef[] {
  assert.match(table, TABLE_NAME, `nft table name ${table}`);
  return (['netdev', 'ip', 'ip6', 'arp'] as const).map((family) => ({ family, name: table }));
}

function checkBuckets(buckets: number, owned: readonly number[]): number[] {
  for (const b of owned) assert.ok(Number.isInteger(b) && b >= 0 && b < buckets, `bucket ${b} outside [0, ${buckets})`);
  return [...new Set(owned)].sort((a, b) => a - b);
}

/** The hash expression of one family's table. */
function hashOf(spec: NftFarmSpec, family: NftFamily): string {
  const h = spec.hashExprs?.[family] ?? (family === familyOf(spec.vip) ? spec.hashExpr : undefined);
  assert.ok(h !== undefined, `no hash expression for the ${family} VIPs (hashExprs.${family})`);
  return h.trim();
}

function checkSpec(spec: NftFarmSpec): NftFamily[] {
  assert.match(spec.table, TABLE_NAME, `nft table name ${spec.table}`);
  assert.match(spec.ifname, IFNAME, `interface name ${spec.ifname}`);
  assert.match(spec.virtualMac, MAC, `virtual MAC ${spec.virtualMac} (lower-case aa:bb:cc:dd:ee:ff)`);
  if (spec.ownMac !== undefined) assert.match(spec.ownMac, MAC, `own MAC ${spec.ownMac} (lower-case aa:bb:cc:dd:ee:ff)`);
  const vips = vipsOfSpec(spec);
  assert.equal(new Set(vips).size, vips.length, `a VIP is listed twice: ${vips.join(', ')}`);
  const families = familiesOf(spec);
  assert.ok(Number.isInteger(spec.buckets) && spec.buckets >= 1 && spec.buckets <= 65536, `buckets ${spec.buckets}`);
  for (const p of spec.ports) assert.ok(Number.isInteger(p) && p >= 1 && p <= 65535, `port ${p}`);
  checkBuckets(spec.buckets, spec.ownedBuckets);
  for (const family of families) {
    const h = hashOf(spec, family);
    assert.ok(h.startsWith(`jhash ${family} saddr`), `hash expression must hash ${family} saddr: ${h}`);
    assert.ok(new RegExp(`\\bmod ${spec.buckets}\\b`).test(h), `hash expression must be mod ${spec.buckets}: ${h}`);
    assert.ok(!/[;{}\n"#]/.test(h), `hash expression must be one expression: ${h}`);
    if (spec.balance === 'source-ip-port') assert.ok(/\. (tcp|th) sport /.test(h), `source-ip-port hashes a source port: ${h}`);
  }
  return families;
}

/** Lines of the rules that accept a new connection of an owned bucket. */
function bucketRules(spec: NftFarmSpec, family: NftFamily): string[] {
  const h = hashOf(spec, family);
  if (spec.balance !== 'source-ip-port') return [`${h} @${OWNED_SET} accept`];
  // The port is at the same offset of the tcp and udp headers; `tcp sport` makes nft add an implicit
  // `meta l4proto tcp`, so udp gets its own rule. Other protocols have no port: dropped below.
  if (h.includes('. th sport ')) return [`meta l4proto { tcp, udp } ${h} @${OWNED_SET} accept`];
  return [`${h} @${OWNED_SET} accept`, `${h.replace('. tcp sport ', '. udp sport ')} @${OWNED_SET} accept`];
}

/** nft's raw-payload form of an IPv6 address (nft 1.0.6 has no `icmpv6 taddr`). */
function ip6Hex(addr: string): string {
  const [head = '', tail] = addr.toLowerCase().split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  assert.equal(all.length, 8, `IPv6 address ${addr} (dotted-quad tails are not supported)`);
  return `0x${all.map((g) => g.padStart(4, '0')).join('')}`;
}

/** A MAC's three 16-bit words. */
function macWords(mac: string): number[] {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  return [0, 2, 4].map((i) => (b[i]! << 8) | b[i + 1]!);
}

/**
 * The rule that rewrites the source link-layer option of the kernel's solicitations sent from the
 * IPv6 VIPs: `ownMac` becomes `virtualMac` and the reserved word takes the ones' complement
 * difference (ownMac - virtualMac), so the ICMPv6 checksum holds unchanged. Linux puts that option
 * first, at byte 24 of the message (type 1, length 1: 8 bytes; ndisc_send_ns).
 */
export function ndSourceRewrite(vips6: readonly string[], ownMac: string, virtualMac: string): string {
  let sum = 0;
  for (const w of macWords(ownMac)) sum += w;
  for (const w of macWords(virtualMac)) sum += 0xffff - w;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const reserved = `0x${sum.toString(16).padStart(8, '0')}`;
  const vmac = `0x${virtualMac.replace(/:/g, '')}`;
  return `icmpv6 type nd-neighbor-solicit ip6 saddr ${addrMatch(vips6)} @th,192,16 0x0101 @th,32,32 set ${reserved} @th,208,48 set ${vmac}`;
}

/** `a` or `{ a, b }`: a match of one address or of several. */
function addrMatch(addrs: readonly string[]): string {
  return addrs.length === 1 ? addrs[0]! : `{ ${addrs.join(', ')} }`;
}

interface TableBody {
  ref: NftTableRef;
  /** chain name -> its lines (hook line first when it is a base chain; rules after). */
  chains: Array<{ name: string; hook?: string; rules: string[] }>;
  sets: string[];
  /** Table flags (`owner`). */
  flags?: string[];
}

function bodies(spec: NftFarmSpec): TableBody[] {
  const families = checkSpec(spec);
  const { table, ifname, virtualMac } = spec;
  const out: TableBody[] = [];

  out.push({
    ref: { family: 'netdev', name: table },
    ...(spec.owner ? { flags: ['owner'] } : {}),
    sets: [],
    chains: [{
      name: 'ingress',
      // Early, so other ingress chains already see the frame as ours.
      hook: `type filter hook ingress device "${ifname}" priority -500; policy accept;`,
      rules: [`ether daddr ${virtualMac} meta pkttype set host`],
    }],
  });

  for (const family of families) out.push(familyBody(spec, family));

  const vips4 = vipsIn(spec, 'ip');
  if (vips4.length > 0) {
    out.push({
      ref: { family: 'arp', name: table },
      sets: [],
      chains: [{
        name: 'output',
        hook: 'type filter hook output priority 0; policy accept;',
        // Replies and requests alike: a request with the VIP as sender also teaches neighbours the
        // node's own MAC for the VIP (farm/vip.ts sets arp_announce=2 so the kernel never sends those).
        rules: [`arp saddr ip ${addrMatch(vips4)} drop`],
      }],
    });
  }

  for (const body of out) {
    const fp = fingerprintOf(body);
    const first = body.chains.find((c) => c.rules.length > 0);
    assert.ok(first, 'every table has a rule');
    first.rules[0] = `${first.rules[0]} comment "croft:${fp}"`;
  }
  return out;
}

/** The ip or ip6 table: the bucket filter of the family's VIPs (and, ip6, neighbour discovery). */
function familyBody(spec: NftFarmSpec, family: NftFamily): TableBody {
  const { table } = spec;
  const vips = vipsIn(spec, family);
  const hashExpr = hashOf(spec, family);
  const vipRules: string[] = [
    // A node's own connections to the VIP come back through lo: they are not the farm's to share.
    'iifname "lo" accept',
    // Only the netdev table makes frames to the virtual MAC PACKET_HOST; without it (its daemon
    // died: the kernel deleted it) nothing of the VIP's traffic may reach the rules below. A
    // unicast virtual MAC is dropped as OTHERHOST before this hook anyway; a multicast one is not.
    'meta pkttype != host drop',
    'ct state established,related accept',
  ];
  if (family === 'ip6') {
    // Neighbour discovery with the VIP (a client's unicast solicitation checking it can still
    // reach it, an advertisement answering the node's own solicitation) is every node's business,
    // not one bucket owner's: the kernel's advertisements for the VIP are dropped on the way out.
    vipRules.push('icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept');
  }
  if (spec.ports.length > 0) {
    const ports = [...new Set(spec.ports)].sort((a, b) => a - b).join(', ');
    vipRules.push(`meta l4proto { tcp, udp } th dport != { ${ports} } drop`);
  }
  // A bucket taken over from a dead node: its connections died with it, and their clients would
  // wait for TCP's own timeout (minutes); a RST tells them now. The kernel never answers a RST.
  vipRules.push(`meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn ${hashExpr} @${TAKEOVER_SET} reject with tcp reset`);
  // A TCP packet this node does not track and that is not an opening SYN belongs to a connection
  // another node holds (typically after a bucket moved here): accepting it would make our stack
  // answer with a RST and kill that connection.
  vipRules.push('meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn drop');
  vipRules.push(...bucketRules(spec, family));
  vipRules.push('drop');

  const ipChains: TableBody['chains'] = [
    {
      name: 'prerouting',
      // -150: after conntrack (-200), so ct state is known; before NAT (-100).
      hook: 'type filter hook prerouting priority -150; policy accept;',
      rules: [`${family} daddr ${addrMatch(vips)} jump vip`],
    },
    { name: 'vip', rules: vipRules },
  ];
  if (family === 'ip6') {
    ipChains.push({
      name: 'output',
      hook: 'type filter hook output priority 0; policy accept;',
      rules: [
        // The target address of a neighbour advertisement is at bytes 8..23 of the ICMPv6 message.
        ...vips.map((vip) => `icmpv6 type nd-neighbor-advert @th,64,128 ${ip6Hex(vip)} drop`),
        ...(spec.ownMac !== undefined ? [ndSourceRewrite(vips, spec.ownMac, spec.virtualMac)] : []),
      ],
    });
  }
  return {
    ref: { family, name: table },
    // numgen's type is the 32-bit integer jhash yields; `typeof jhash ...` would do the same, but
    // nft 1.0.6 crashes when it lists such a set.
    // With ownedTimeoutMs both sets expire unless renewed (a driver without an owner table: a
    // node whose daemon died must not reset the connections of the nodes that took its buckets
    // over). The daemon uses an owner netdev table instead, and renews nothing.
    sets: [OWNED_SET, TAKEOVER_SET].map((name) => `set ${name} {\n\t\ttypeof numgen inc mod ${spec.buckets}${spec.ownedTimeoutMs ? `\n\t\tflags timeout\n\t\ttimeout ${Math.round(spec.ownedTimeoutMs)}ms` : ''}\n\t}`),
    chains: ipChains,
  };
}

function fingerprintOf(body: TableBody): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
}

function tableText(body: TableBody): string {
  const lines = [`table ${body.ref.family} ${body.ref.name} {`];
  if (body.flags?.length) lines.push(`\tflags ${body.flags.join(', ')};`);
  for (const s of body.sets) lines.push(`\t${s}`);
  for (const c of body.chains) {
    lines.push(`\tchain ${c.name} {`);
    if (c.hook) lines.push(`\t\t${c.hook}`);
    for (const r of c.rules) lines.push(`\t\t${r}`);
    lines.push('\t}');
  }
  lines.push('}');
  return lines.join('\n');
}

/**
 * `add table` then `delete table`: removes a table whether or not it exists, inside a transaction.
 * With `present` (the tables known to exist): a plain `delete table` for those, nothing for the
 * others. The owner mode needs that: `add table` of an owner table without the flag, or of a plain
 * table with it, is a change of its owner flag, which the kernel refuses (EOPNOTSUPP).
 */
function deleteLines(ref: NftTableRef, present?: readonly NftTableRef[]): string[] {
  if (present === undefined) return [`table ${ref.family} ${ref.name} {}`, `delete table ${ref.family} ${ref.name}`];
  return present.some((p) => p.family === ref.family && p.name === ref.name) ? [`delete table ${ref.family} ${ref.name}`] : [];
}

function elementLines(ref: NftTableRef, owned: number[], takeover: number[]): string[] {
  const lines: string[] = [];
  for (const [set, elements] of [[OWNED_SET, owned], [TAKEOVER_SET, takeover]] as const) {
    lines.push(`flush set ${ref.family} ${ref.name} ${set}`);
    if (elements.length > 0) lines.push(`add element ${ref.family} ${ref.name} ${set} { ${elements.join(', ')} }`);
  }
  return lines;
}

/**
 * The whole rule set, as one `nft -f` transaction: every table is deleted (if present) and created
 * again, so the kernel swaps old for new atomically and applying the text twice leaves the same
 * tables. Conntrack entries live outside the tables, so established connections are kept.
 * `present`: the tables known to exist now (deleteLines), for the owner mode.
 */
export function renderTables(spec: NftFarmSpec, present?: readonly NftTableRef[]): string {
  const owned = checkBuckets(spec.buckets, spec.ownedBuckets);
  const takeover = takeoverOf(spec);
  const out: string[] = [];
  for (const body of bodies(spec)) {
    out.push(...deleteLines(body.ref, present), tableText(body));
    if (body.sets.length > 0) out.push(...elementLines(body.ref, owned, takeover));
  }
  return `${out.join('\n')}\n`;
}

/**
 * The new sets of this node's buckets and of those it took over (a subset of them), as one atomic
 * transaction (flush set + add element, for each).
 */
export function renderBucketUpdate(spec: Pick<NftFarmSpec, 'table' | 'vip' | 'vips' | 'buckets'>, owned: readonly number[],
  takeover: readonly number[] = []): string {
  assert.match(spec.table, TABLE_NAME, `nft table name ${spec.table}`);
  const mine = checkBuckets(spec.buckets, owned);
  const taken = takeoverOf({ buckets: spec.buckets, ownedBuckets: mine, takeoverBuckets: [...takeover] });
  // Every family's table holds the same sets: one transaction changes them all.
  const lines = familiesOf(spec).flatMap((family) => elementLines({ family, name: spec.table }, mine, taken));
  return `${lines.join('\n')}\n`;
}

/** Removes the tables (absent ones included; with `present`, only those) in one transaction. */
export function renderDelete(tables: readonly NftTableRef[], present?: readonly NftTableRef[]): string {
  for (const t of tables) assert.match(t.name, TABLE_NAME, `nft table name ${t.name}`);
  return `${tables.flatMap((t) => deleteLines(t, present)).join('\n')}\n`;
}

/** What each table of the spec must hold (fingerprint and rules per chain), for reconcile. */
export function shapesOf(spec: NftFarmSpec): NftTableShape[] {
  return bodies(spec).map((b) => {
    const m = /comment "croft:([0-9a-f]+)"$/.exec(b.chains.find((c) => c.rules.length > 0)!.rules[0]!);
    return {
      ...b.ref,
      fingerprint: m![1]!,
      chains: Object.fromEntries(b.chains.map((c) => [c.name, c.rules.length])),
    };
  });
}
