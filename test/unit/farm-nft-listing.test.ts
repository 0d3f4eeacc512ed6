// What the farm's reconcile asks nftables in owner mode (farm/nft-apply.ts). libnftables 1.0.6
// (Debian 12) frees a table's flags before printing them in JSON: `-j list table` or `-j list
// tables` of the owner netdev table read freed memory, and a daemon reconciling every 10 s aborted
// on a corrupted heap. The owner table is read chain by chain, and table names from the text
// listing; this checks the commands sent, and that the answers are read as before (the kernel's
// side: test/integration/farm-owner.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { NftFarm, type NftRunResult } from '../../farm/nft-apply.js';
import { shapesOf, type NftFarmSpec, type NftTableShape } from '../../farm/nft-render.js';

const spec: NftFarmSpec = {
  table: 'croft_web',
  ifname: 'eth0',
  vip: '10.77.0.100',
  virtualMac: '02:00:5e:12:34:56',
  macMode: 'invisible',
  buckets: 256,
  balance: 'source-ip',
  ports: [80],
  ownedBuckets: [1, 5, 9],
  hashExpr: 'jhash ip saddr mod 256 seed 0x1234abcd',
};

const ok = (stdout: string): NftRunResult => ({ code: 0, stdout, stderr: '' }) as NftRunResult;
const json = (objs: object[]) => ok(JSON.stringify({ nftables: [{ metainfo: { json_schema_version: 1 } }, ...objs] }));

/** The kernel's answers for tables equal to the spec's shapes; `dropRule` empties a netdev chain. */
function kernel(shapes: NftTableShape[], opts: { dropRule?: boolean } = {}) {
  const sent: string[] = [];
  const chainsOf = (s: NftTableShape) => Object.keys(s.chains).map((name) => ({ chain: { family: s.family, table: s.name, name } }));
  const rulesOf = (s: NftTableShape, chain: string) => {
    if (opts.dropRule && s.family === 'netdev') return [];
    const first = Object.entries(s.chains).find(([, n]) => n > 0)![0];
    return Array.from({ length: s.chains[chain]! }, (_, i) => ({
      rule: { family: s.family, table: s.name, chain, ...(chain === first && i === 0 ? { comment: `croft:${s.fingerprint}` } : {}) },
    }));
  };
  const setsOf = (s: NftTableShape) => (s.family === 'ip' || s.family === 'ip6'
    ? ['owned', 'takeover'].map((name) => ({ set: { family: s.family, table: s.name, name } })) : []);
  const run = async (args: string[]): Promise<NftRunResult> => {
    const cmd = args.join(' ');
    sent.push(cmd);
    if (cmd === 'list tables') return ok(shapes.map((s) => `table ${s.family} ${s.name}\n`).join(''));
    let m = /^-j list chains (\S+)$/.exec(cmd);
    if (m) return json(shapes.filter((s) => s.family === m![1]).flatMap(chainsOf));
    m = /^-j list chain (\S+) (\S+) (\S+)$/.exec(cmd);
    if (m) {
      const s = shapes.find((x) => x.family === m![1] && x.name === m![2])!;
      return json([{ chain: { family: s.family, table: s.name, name: m[3] } }, ...rulesOf(s, m[3]!)]);
    }
    m = /^-j list table (\S+) (\S+)$/.exec(cmd);
    if (m) {
      const s = shapes.find((x) => x.family === m![1] && x.name === m![2])!;
      return json([{ table: { family: s.family, name: s.name } }, ...chainsOf(s), ...Object.keys(s.chains).flatMap((c) => rulesOf(s, c)), ...setsOf(s)]);
    }
    if (cmd === `-j list set ip ${spec.table} owned`) return json([{ set: { elem: spec.ownedBuckets } }]);
    if (cmd === '-f -') return ok('');
    throw new Error(`unexpected nft command: ${cmd}`);
  };
  return { sent, run };
}

/** A command whose JSON would hold a table object with its flags. */
const tableJson = (cmd: string) => /^-j list (tables|ruleset|table netdev)/.test(cmd);

describe('NftFarm owner mode: listing', () => {
  const shapes = shapesOf({ ...spec, owner: true });

  it('reconcile reads the owner table chain by chain, never as a JSON table object, and finds it equal', async () => {
    const k = kernel(shapes);
    const farm = new NftFarm({ owner: true, run: k.run });
    farm.attach(spec);
    assert.deepEqual(await farm.reconcile(), { fixed: 'nothing', reasons: [] });
    assert.deepEqual(k.sent.filter(tableJson), []);
    assert.ok(k.sent.includes('-j list chain netdev croft_web ingress'), k.sent.join('\n'));
    assert.ok(k.sent.includes('-j list table ip croft_web'), 'the tables without flags are still read whole');
  });

  it('a rule missing from the owner table is still seen, and the tables rewritten', async () => {
    const k = kernel(shapes, { dropRule: true });
    const farm = new NftFarm({ owner: true, run: k.run });
    farm.attach(spec);
    const r = await farm.reconcile();
    assert.equal(r.fixed, 'tables');
    assert.match(r.reasons.join('; '), /table netdev croft_web has chains\/rules .*wants/);
    assert.match(r.reasons.join('; '), /table netdev croft_web was not rendered from this configuration/);
    assert.deepEqual(k.sent.filter(tableJson), []);
  });

  it('a missing owner table is reported missing (from the text listing)', async () => {
    const k = kernel(shapes.filter((s) => s.family !== 'netdev'));
    const farm = new NftFarm({ owner: true, run: k.run });
    farm.attach(spec);
    const r = await farm.reconcile();
    assert.equal(r.fixed, 'tables');
    assert.ok(r.reasons.includes('table netdev croft_web is missing'), r.reasons.join('; '));
  });
});
