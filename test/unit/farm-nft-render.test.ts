// The farm's nft rule set text (farm/nft-render.ts). The kernel's acceptance of this text and its
// behaviour are tested in test/integration/farm-dataplane.test.ts.
import { describe, it } from 'vitest';
import assert from 'node:assert/strict';
import {
  allTablesNamed, ndSourceRewrite, renderBucketUpdate, renderDelete, renderTables, shapesOf, tablesOf, type NftFarmSpec,
} from '../../farm/nft-render.js';

const base: NftFarmSpec = {
  table: 'croft_web',
  ifname: 'eth0',
  vip: '10.77.0.100',
  virtualMac: '02:00:5e:12:34:56',
  macMode: 'invisible',
  buckets: 256,
  balance: 'source-ip',
  ports: [],
  ownedBuckets: [7, 3, 200, 3],
  hashExpr: 'jhash ip saddr mod 256 seed 0x1234abcd',
};

/** The body of `table <family> croft_web { ... }` (the definition, not the add/delete lines). */
function table(text: string, family: string): string {
  const start = text.indexOf(`table ${family} croft_web {\n`);
  assert.ok(start >= 0, `no ${family} table in:\n${text}`);
  return text.slice(start, text.indexOf('\n}', start) + 2);
}

function chainLines(tableText: string, chain: string): string[] {
  const start = tableText.indexOf(`\tchain ${chain} {`);
  assert.ok(start >= 0, `no chain ${chain}`);
  return tableText.slice(start, tableText.indexOf('\n\t}', start)).split('\n').slice(1).map((l) => l.trim());
}

describe('renderTables', () => {
  const text = renderTables(base);

  it('owner: only the netdev table is owned by the socket; the ip and arp tables outlive a dead daemon', () => {
    const owned = renderTables({ ...base, owner: true });
    assert.match(table(owned, 'netdev'), /^table netdev croft_web \{\n\tflags owner;\n/);
    for (const family of ['ip', 'arp']) assert.doesNotMatch(table(owned, family), /flags owner/);
    assert.doesNotMatch(text, /flags owner/, 'no owner table unless asked (a short-lived nft would lose it at once)');
    // A daemon with an owner table and one without do not hold the same netdev table.
    const fp = (s: NftFarmSpec) => shapesOf(s).map((x) => x.fingerprint);
    assert.notEqual(fp({ ...base, owner: true })[0], fp(base)[0]);
    assert.deepEqual(fp({ ...base, owner: true }).slice(1), fp(base).slice(1));
  });

  it('owner mode deletes only the tables present, with no `add table` (that would change an owner flag)', () => {
    const owned = renderTables({ ...base, owner: true }, [{ family: 'netdev', name: 'croft_web' }]);
    const deletes = owned.split('\n').filter((l) => /^delete table|^table \w+ croft_web \{\}$/.test(l));
    assert.deepEqual(deletes, ['delete table netdev croft_web']);
    assert.equal(renderDelete(allTablesNamed('croft_web'), []), '\n');
    assert.match(renderTables(base), /^table netdev croft_web \{\}\ndelete table netdev croft_web\n/, 'without `present`: the idempotent idiom');
  });

  it('the vip chain takes only PACKET_HOST (without the netdev table a multicast virtual MAC reaches no set, no reject)', () => {
    const vip = chainLines(table(text, 'ip'), 'vip').map((l) => l.replace(/ comment "croft:[0-9a-f]+"$/, ''));
    const guard = vip.indexOf('meta pkttype != host drop');
    assert.ok(guard >= 0, vip.join('\n'));
    assert.ok(vip.findIndex((l) => /@owned|@takeover|established/.test(l)) > guard, vip.join('\n'));
  });

  it('netdev ingress on the interface marks frames to the virtual MAC as host', () => {
    const t = table(text, 'netdev');
    const lines = chainLines(t, 'ingress');
    assert.match(lines[0]!, /^type filter hook ingress device "eth0" priority -?\d+; policy accept;$/);
    assert.match(lines[1]!, /^ether daddr 02:00:5e:12:34:56 meta pkttype set host( comment "croft:[0-9a-f]+")?$/);
    assert.equal(lines.length, 2);
  });

  it('ip prerouting after conntrack: established first, then owned buckets, then drop (reject only for takeover buckets)', () => {
    const t = table(text, 'ip');
    const pre = chainLines(t, 'prerouting');
    assert.equal(pre[0], 'type filter hook prerouting priority -150; policy accept;');
    assert.match(pre[1]!, /^ip daddr 10\.77\.0\.100 jump vip/);
    const vip = chainLines(t, 'vip').map((l) => l.replace(/ comment "croft:[0-9a-f]+"$/, ''));
    const est = vip.indexOf('ct state established,related accept');
    const syn = vip.indexOf('meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn drop');
    const own = vip.indexOf('jhash ip saddr mod 256 seed 0x1234abcd @owned accept');
    assert.ok(est >= 0 && syn > est && own > syn, vip.join('\n'));
    assert.equal(vip.at(-1), 'drop');
    // The one reject: untracked packets of buckets taken over from a dead node (farm-takeover.test.ts).
    assert.deepEqual(text.split('\n').filter((l) => /reject/.test(l)).map((l) => l.trim()),
      ['meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn jhash ip saddr mod 256 seed 0x1234abcd @takeover reject with tcp reset']);
    assert.match(t, /set owned \{\n\t\ttypeof numgen inc mod 256\n\t\}/);
  });

  it('the owned set gets its elements, sorted and once each, in the same transaction', () => {
    assert.match(text, /flush set ip croft_web owned\nadd element ip croft_web owned \{ 3, 7, 200 \}\n/);
  });

  it('arp output drops the kernel\'s own ARP with the VIP as sender', () => {
    const lines = chainLines(table(text, 'arp'), 'output');
    assert.equal(lines[0], 'type filter hook output priority 0; policy accept;');
    assert.match(lines[1]!, /^arp saddr ip 10\.77\.0\.100 drop/);
  });

  it('each table is deleted (existing or not) and defined again: an atomic replace', () => {
    for (const f of ['netdev', 'ip', 'arp']) {
      const def = text.indexOf(`table ${f} croft_web {\n`);
      assert.ok(text.indexOf(`table ${f} croft_web {}\ndelete table ${f} croft_web\n`) < def, f);
    }
    assert.deepEqual(tablesOf(base), [
      { family: 'netdev', name: 'croft_web' }, { family: 'ip', name: 'croft_web' }, { family: 'arp', name: 'croft_web' },
    ]);
  });

  it('listed ports: other tcp/udp ports to the VIP are dropped; none listed: no port rule', () => {
    const vip = chainLines(table(renderTables({ ...base, ports: [443, 80, 80] }), 'ip'), 'vip');
    assert.ok(vip.includes('meta l4proto { tcp, udp } th dport != { 80, 443 } drop'), vip.join('\n'));
    assert.doesNotMatch(text, /dport/);
  });

  it('source-ip-port with `tcp sport`: one rule for tcp and one for udp', () => {
    const spec: NftFarmSpec = { ...base, balance: 'source-ip-port', hashExpr: 'jhash ip saddr . tcp sport mod 256 seed 0x00000001' };
    const vip = chainLines(table(renderTables(spec), 'ip'), 'vip');
    assert.ok(vip.includes('jhash ip saddr . tcp sport mod 256 seed 0x00000001 @owned accept'));
    assert.ok(vip.includes('jhash ip saddr . udp sport mod 256 seed 0x00000001 @owned accept'));
  });

  it('source-ip-port with `th sport`: one rule restricted to tcp and udp', () => {
    const spec: NftFarmSpec = { ...base, balance: 'source-ip-port', hashExpr: 'jhash ip saddr . th sport mod 256 seed 0x00000001' };
    const vip = chainLines(table(renderTables(spec), 'ip'), 'vip');
    assert.ok(vip.includes('meta l4proto { tcp, udp } jhash ip saddr . th sport mod 256 seed 0x00000001 @owned accept'));
  });

  it('network balance: the expression is used as given', () => {
    const spec: NftFarmSpec = { ...base, balance: 'network', hashExpr: 'jhash ip saddr & 255.255.255.0 mod 256 seed 0x00000001' };
    assert.ok(chainLines(table(renderTables(spec), 'ip'), 'vip').includes('jhash ip saddr & 255.255.255.0 mod 256 seed 0x00000001 @owned accept'));
  });

  it('IPv6: an ip6 table whose output drops neighbour advertisements for the VIP; no arp table', () => {
    const spec: NftFarmSpec = { ...base, vip: 'fd00:77::100', hashExpr: 'jhash ip6 saddr mod 256 seed 0x1234abcd' };
    const t6 = renderTables(spec);
    assert.doesNotMatch(t6, /table arp/);
    const t = table(t6, 'ip6');
    assert.match(chainLines(t, 'prerouting')[1]!, /^ip6 daddr fd00:77::100 jump vip/);
    assert.equal(chainLines(t, 'output')[1], 'icmpv6 type nd-neighbor-advert @th,64,128 0xfd000077000000000000000000000100 drop');
    assert.deepEqual(tablesOf(spec).map((r) => r.family), ['netdev', 'ip6']);
  });

  it('IPv6: neighbour discovery with the VIP passes on every node, before the buckets', () => {
    const spec: NftFarmSpec = { ...base, vip: 'fd00:77::100', hashExpr: 'jhash ip6 saddr mod 256 seed 0x1234abcd' };
    const vip = chainLines(table(renderTables(spec), 'ip6'), 'vip');
    const nd = vip.indexOf('icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept');
    assert.ok(nd > vip.indexOf('ct state established,related accept') && nd < vip.findIndex((l) => l.includes('@owned')), vip.join('\n'));
    // IPv4 has no such rule (ARP is not IP).
    assert.ok(!chainLines(table(renderTables(base), 'ip'), 'vip').some((l) => l.includes('icmpv6')));
  });

  it('IPv6: the kernel\'s solicitations from the VIP get the virtual MAC, checksum-neutral', () => {
    const spec: NftFarmSpec = { ...base, vip: 'fd00:77::100', hashExpr: 'jhash ip6 saddr mod 256 seed 0x1234abcd', ownMac: '56:ee:ac:00:27:76',
      virtualMac: '02:00:00:aa:bb:cc' };
    const out = chainLines(table(renderTables(spec), 'ip6'), 'output');
    // Checked against the kernel by hand (a client learnt the virtual MAC from the rewritten
    // solicitation): 0x56ee + 0xac00 + 0x2776 - (0x0200 + 0x00aa + 0xbbcc), ones' complement.
    assert.equal(out[2], 'icmpv6 type nd-neighbor-solicit ip6 saddr fd00:77::100 @th,192,16 0x0101 @th,32,32 set 0x00006bee @th,208,48 set 0x020000aabbcc');
    // Ones' complement sum of the MAC words plus the reserved word is the same before and after.
    const words = (mac: string) => [0, 1, 2].map((i) => parseInt(mac.replace(/:/g, '').slice(4 * i, 4 * i + 4), 16));
    const fold = (n: number) => { while (n > 0xffff) n = (n & 0xffff) + (n >>> 16); return n; };
    for (const [own, virt] of [['56:ee:ac:00:27:76', '02:00:00:aa:bb:cc'], ['ff:ff:ff:ff:ff:fe', '02:00:00:00:00:01'], ['02:00:00:00:00:01', '02:00:00:00:00:01']] as const) {
      const m = /@th,32,32 set 0x([0-9a-f]{8})/.exec(ndSourceRewrite(['fd00::1'], own, virt))!;
      const reserved = parseInt(m[1]!, 16);
      const before = fold(words(own).reduce((a, b) => a + b, 0));
      const after = fold(words(virt).reduce((a, b) => a + b, 0) + (reserved >>> 16) + (reserved & 0xffff));
      assert.equal(after % 0xffff, before % 0xffff, `${own} -> ${virt}`);
    }
    // No own MAC given: no rewrite (tools and tests); the daemon always gives it.
    assert.equal(chainLines(table(renderTables({ ...spec, ownMac: undefined }), 'ip6'), 'output').length, 2);
  });

  it('several VIPs, IPv4 and IPv6: one table per family matching all its VIPs, the same buckets in each', () => {
    const spec: NftFarmSpec = {
      ...base, vips: ['10.77.0.100', 'fd00:77::100', '10.77.0.101', 'fd00:77::101'], ownMac: '52:54:00:00:00:01',
      hashExprs: { ip: 'jhash ip saddr mod 256 seed 0x1234abcd', ip6: 'jhash ip6 saddr mod 256 seed 0x1234abcd' },
    };
    assert.deepEqual(tablesOf(spec).map((r) => r.family), ['netdev', 'ip', 'ip6', 'arp']);
    const text = renderTables(spec);
    assert.match(chainLines(table(text, 'ip'), 'prerouting')[1]!, /^ip daddr \{ 10\.77\.0\.100, 10\.77\.0\.101 \} jump vip/);
    assert.match(chainLines(table(text, 'ip6'), 'prerouting')[1]!, /^ip6 daddr \{ fd00:77::100, fd00:77::101 \} jump vip/);
    assert.ok(chainLines(table(text, 'ip6'), 'vip').includes('jhash ip6 saddr mod 256 seed 0x1234abcd @owned accept'));
    assert.ok(chainLines(table(text, 'ip'), 'vip').includes('jhash ip saddr mod 256 seed 0x1234abcd @owned accept'));
    const out6 = chainLines(table(text, 'ip6'), 'output');
    assert.equal(out6.filter((l) => l.startsWith('icmpv6 type nd-neighbor-advert')).length, 2);
    assert.match(out6[3]!, /ip6 saddr \{ fd00:77::100, fd00:77::101 \}/);
    assert.match(chainLines(table(text, 'arp'), 'output')[1]!, /^arp saddr ip \{ 10\.77\.0\.100, 10\.77\.0\.101 \} drop/);
    for (const f of ['ip', 'ip6']) assert.match(table(text, f), /flush set \w+ croft_web owned|set owned/);
    assert.match(text, /add element ip croft_web owned \{ 3, 7, 200 \}/);
    assert.match(text, /add element ip6 croft_web owned \{ 3, 7, 200 \}/);
    assert.equal(renderBucketUpdate(spec, [5]),
      'flush set ip croft_web owned\nadd element ip croft_web owned { 5 }\nflush set ip croft_web takeover\n'
      + 'flush set ip6 croft_web owned\nadd element ip6 croft_web owned { 5 }\nflush set ip6 croft_web takeover\n');
    // Each family needs its own expression; vips must hold vip; no VIP twice.
    assert.throws(() => renderTables({ ...spec, hashExprs: undefined }), /hashExprs\.ip6/);
    assert.throws(() => renderTables({ ...spec, vips: ['10.77.0.101'] }), /must include vip/);
    assert.throws(() => renderTables({ ...spec, vips: ['10.77.0.100', '10.77.0.100'] }), /listed twice/);
  });

  it('exactly one rule per table carries the fingerprint; it follows the rules, not the buckets', () => {
    for (const f of ['netdev', 'ip', 'arp']) assert.equal(table(text, f).match(/comment "croft:/g)?.length, 1, f);
    const fp = (s: NftFarmSpec) => shapesOf(s).map((x) => x.fingerprint);
    assert.deepEqual(fp({ ...base, ownedBuckets: [] }), fp(base));
    assert.notDeepEqual(fp({ ...base, ports: [80] }), fp(base));
    assert.notDeepEqual(fp({ ...base, virtualMac: '02:00:5e:00:00:01' }), fp(base));
    assert.deepEqual(shapesOf(base).find((s) => s.family === 'ip')!.chains, { prerouting: 1, vip: 7 });
  });

  it('refuses what would render a wrong rule set (programmer errors)', () => {
    assert.throws(() => renderTables({ ...base, ownedBuckets: [256] }), /bucket 256/);
    assert.throws(() => renderTables({ ...base, hashExpr: 'jhash ip saddr mod 128 seed 0x1' }), /mod 256/);
    assert.throws(() => renderTables({ ...base, vip: 'fd00::1' }), /ip6 saddr/);
    assert.throws(() => renderTables({ ...base, hashExpr: 'jhash ip saddr mod 256 seed 1; flush ruleset' }), /one expression/);
    assert.throws(() => renderTables({ ...base, table: 'croft web' }), /table name/);
    assert.throws(() => renderTables({ ...base, virtualMac: '02:00:5E:12:34:56' }), /MAC/);
    assert.throws(() => renderTables({ ...base, balance: 'source-ip-port' }), /source port/);
  });
});

describe('renderBucketUpdate and renderDelete', () => {
  it('flush set and add element, one transaction', () => {
    assert.equal(renderBucketUpdate(base, [9, 1, 9]),
      'flush set ip croft_web owned\nadd element ip croft_web owned { 1, 9 }\nflush set ip croft_web takeover\n');
    assert.equal(renderBucketUpdate({ ...base, vip: 'fd00::1' }, []), 'flush set ip6 croft_web owned\nflush set ip6 croft_web takeover\n');
    assert.throws(() => renderBucketUpdate(base, [-1]), /bucket -1/);
  });

  it('deletes tables whether or not they exist', () => {
    assert.equal(
      renderDelete(allTablesNamed('croft_web').slice(0, 2)),
      'table netdev croft_web {}\ndelete table netdev croft_web\ntable ip croft_web {}\ndelete table ip croft_web\n',
    );
    assert.deepEqual(allTablesNamed('croft_web').map((t) => t.family), ['netdev', 'ip', 'ip6', 'arp']);
  });
});
