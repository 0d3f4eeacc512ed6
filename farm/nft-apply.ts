// Driver of the farm's nftables data plane: runs nft's language in the current network namespace
// (the daemon runs inside its node's namespaces) with text rendered by farm/nft-render.ts.
// Every change is one `nft -f -` transaction: the kernel applies all of it or none of it.
//
// Two ways to reach the kernel, the same text either way:
// - owner mode (the daemon): libnftables inside this process (src/native/nft.ts), over one netlink
//   socket held for the NftFarm's life; the netdev table is owned by that socket, so the kernel
//   deletes it when the daemon dies and the node stops taking the VIP's frames with no renewal at
//   all. No process is spawned, for a bucket change or a reconcile.
// - otherwise: one `nft` process per call (tools and tests that apply a rule set that must outlive
//   them); no owner table.
import assert from 'node:assert/strict';
import { CroftError } from '../src/errors.js';
import { run, type Ran } from '../src/net/command.js';
import { NftSession } from '../src/native/index.js';
import {
  allTablesNamed, OWNED_SET, TAKEOVER_SET, renderBucketUpdate, renderDelete, renderTables, shapesOf, tablesOf,
  type NftFarmSpec, type NftTableRef,
} from './nft-render.js';
import { familyOf } from './hash-input.js';

/** An nft run's exit code and output: the shape of the shared runner's (src/net/command.ts). */
export type NftRunResult = Ran;

/** How nft is run: argv after the binary, and its stdin. Replaceable for tests of the driver alone. */
export type NftRunner = (args: string[], input?: string) => Promise<NftRunResult>;

export interface NftFarmOptions {
  /** Default `nft` (from PATH). */
  nftPath?: string;
  run?: NftRunner;
  /** One nft call taking longer than this is killed. Default 10000: nft answers in milliseconds. */
  timeoutMs?: number;
  /**
   * Owner mode: nft runs in this process over a netlink socket held until close() (or the
   * process's end), and the netdev table is owned by it (nft-render's spec.owner). Ignores
   * nftPath and timeoutMs; `run` replaces the session only in tests of the commands sent.
   */
  owner?: boolean;
}

export interface ReconcileResult {
  /** What had to be rewritten: nothing, the owned set only, or the tables. */
  fixed: 'nothing' | 'buckets' | 'tables';
  /** Why, in words for the log. */
  reasons: string[];
}

function spawnRunner(nftPath: string, timeoutMs: number): NftRunner {
  return (args, input) => run([nftPath, ...args], 'CROFT_ERR_NFT_APPLY', { input: input ?? '', timeoutMs });
}

/** The argv this file passes (`-f -` with stdin, or `[-j] list ...`) as a command of the session. */
function sessionRunner(session: () => NftSession): NftRunner {
  return (args, input) => {
    const json = args[0] === '-j';
    const rest = json ? args.slice(1) : args;
    const text = rest.length === 2 && rest[0] === '-f' && rest[1] === '-' ? input ?? '' : rest.join(' ');
    return session().run(text, { json });
  };
}

/** Words added to a kernel error that has a known cause in owner mode. */
function ownerHint(stderr: string): string {
  if (/Operation not supported/.test(stderr)) return ' (an owner table needs Linux 5.12 or later)';
  if (/Operation not permitted/.test(stderr)) {
    return ' (a table of this name is owned by another process\'s netlink socket: another croft daemon in this network namespace?)';
  }
  return '';
}

type NftJsonObject = {
  table?: { family: string; name: string };
  chain?: { family: string; table: string; name: string };
  set?: { family: string; table: string; name: string; elem?: unknown[] };
  rule?: { family: string; table: string; chain: string; comment?: string };
};

function elemNumber(e: unknown): number {
  if (typeof e === 'number') return e;
  // With counters or timeouts nft wraps an element: { elem: { val: 3, ... } }.
  const val = (e as { elem?: { val?: unknown } } | null)?.elem?.val;
  assert.ok(typeof val === 'number', `unexpected set element in nft's JSON: ${JSON.stringify(e)}`);
  return val;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  const x = [...new Set(a)].sort((p, q) => p - q);
  const y = [...new Set(b)].sort((p, q) => p - q);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/**
 * The farm rule set of one module on this node. Calls are serialized: a bucket update never
 * interleaves with a reconcile.
 */
export class NftFarm {
  readonly #run: NftRunner;
  readonly #owner: boolean;
  #session: NftSession | null = null;
  #spec: NftFarmSpec | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: NftFarmOptions = {}) {
    this.#owner = opts.owner ?? false;
    this.#run = opts.run ?? (this.#owner
      // Opened at the first call, not before: a module that never starts holds no socket.
      ? sessionRunner(() => (this.#session ??= new NftSession()))
      : spawnRunner(opts.nftPath ?? 'nft', opts.timeoutMs ?? 10_000));
  }

  /**
   * Owner mode: closes the socket after the calls queued so far, so the kernel deletes the owner
   * table (remove() first for the other tables). The next call opens a new socket.
   */
  close(): Promise<void> {
    return this.#serial(async () => {
      this.#session?.close();
      this.#session = null;
    });
  }

  /** The spec as this driver renders it (owner mode: an owner netdev table). */
  #mine(spec: NftFarmSpec): NftFarmSpec {
    return { ...structuredClone(spec), owner: this.#owner };
  }

  /** The spec last applied or attached, with the buckets last set. */
  get spec(): NftFarmSpec | undefined {
    return this.#spec ? structuredClone(this.#spec) : undefined;
  }

  /**
   * Creates or atomically replaces every table of the spec (owned set = spec.ownedBuckets).
   * Applying the same spec twice changes nothing; established connections are kept.
   */
  apply(given: NftFarmSpec): Promise<void> {
    const spec = this.#mine(given);
    return this.#serial(async () => {
      // Tables of another family (the VIP moved from IPv4 to IPv6) go in the same transaction.
      const wanted = tablesOf(spec);
      const all = allTablesNamed(spec.table);
      const others = all.filter((t) => !wanted.some((w) => w.family === t.family));
      // Owner mode: which of ours exist decides the delete lines (nft-render deleteLines).
      const present = await this.#presentTables(this.#owner ? all : others);
      const stale = present.filter((t) => others.some((o) => o.family === t.family));
      await this.#nftFile(`${renderDelete(stale)}${renderTables(spec, this.#owner ? present : undefined)}`, `apply the rule set of ${spec.table}`);
      this.#spec = spec;
    });
  }

  /** Declares the spec without touching the kernel (at daemon start, before reconcile()). */
  attach(given: NftFarmSpec): void {
    const spec = this.#mine(given);
    shapesOf(spec); // validates
    this.#spec = spec;
  }

  /**
   * This node's buckets become exactly `buckets`, and those taken over from a dead node
   * `takeover`, in one atomic update of both sets.
   */
  setOwned(buckets: readonly number[], takeover: readonly number[] = []): Promise<void> {
    return this.#serial(async () => {
      const spec = this.#required('setOwned');
      await this.#nftFile(renderBucketUpdate(spec, buckets, takeover), `set the buckets of ${spec.table}`);
      spec.ownedBuckets = [...new Set(buckets)].sort((a, b) => a - b);
      spec.takeoverBuckets = [...new Set(takeover)].filter((b) => spec.ownedBuckets.includes(b)).sort((a, b) => a - b);
    });
  }

  /** The buckets in the kernel's owned set. */
  listOwned(): Promise<number[]> {
    return this.#serial(() => this.#listOwned(this.#required('listOwned')));
  }

  /**
   * Compares what the kernel holds with the spec (tables, chains, rules per chain, the fingerprint
   * comment of the rendered rules, the owned set) and rewrites what differs: the owned set alone
   * when only it differs, else every table, atomically.
   * Not seen: a rule edited in place by hand to another rule of the same count and comment.
   */
  reconcile(): Promise<ReconcileResult> {
    return this.#serial(async () => {
      const spec = this.#required('reconcile');
      const reasons: string[] = [];
      for (const shape of shapesOf(spec)) {
        const objs = await this.#listTable(shape);
        const where = `table ${shape.family} ${shape.name}`;
        if (objs === undefined) {
          reasons.push(`${where} is missing`);
          continue;
        }
        const chains = objs.flatMap((o) => (o.chain ? [o.chain.name] : []));
        const counts: Record<string, number> = Object.fromEntries(chains.map((c) => [c, 0]));
        for (const o of objs) if (o.rule) counts[o.rule.chain] = (counts[o.rule.chain] ?? 0) + 1;
        const want = JSON.stringify(Object.entries(shape.chains).sort());
        const have = JSON.stringify(Object.entries(counts).sort());
        if (want !== have) reasons.push(`${where} has chains/rules ${have}, wants ${want}`);
        const marked = objs.filter((o) => o.rule?.comment?.startsWith('croft:')).map((o) => o.rule!.comment);
        if (marked.length !== 1 || marked[0] !== `croft:${shape.fingerprint}`) {
          reasons.push(`${where} was not rendered from this configuration (${marked.join(', ') || 'no croft rule'})`);
        }
        const sets = objs.flatMap((o) => (o.set ? [o.set.name] : []));
        const wantSets = shape.family === 'ip' || shape.family === 'ip6' ? [OWNED_SET, TAKEOVER_SET].sort() : [];
        if (JSON.stringify(sets.sort()) !== JSON.stringify(wantSets)) reasons.push(`${where} has sets [${sets.join(', ')}]`);
      }
      const wanted = tablesOf(spec);
      const present = await this.#presentTables(allTablesNamed(spec.table));
      const stale = present.filter((t) => !wanted.some((w) => w.family === t.family));
      for (const t of stale) reasons.push(`table ${t.family} ${t.name} should not exist`);
      if (reasons.length > 0) {
        await this.#nftFile(`${renderDelete(stale)}${renderTables(spec, this.#owner ? present : undefined)}`, `reconcile the rule set of ${spec.table}`);
        return { fixed: 'tables', reasons };
      }
      const owned = await this.#listOwned(spec);
      const differs = !sameNumbers(owned, spec.ownedBuckets);
      // Buckets that expire (spec.ownedTimeoutMs) are renewed here, whether or not they differ.
      if (differs || spec.ownedTimeoutMs) {
        await this.#nftFile(renderBucketUpdate(spec, spec.ownedBuckets, spec.takeoverBuckets), `set the buckets of ${spec.table}`);
      }
      if (differs) {
        return { fixed: 'buckets', reasons: [`owned set had ${owned.length} buckets that differ from the ${spec.ownedBuckets.length} wanted`] };
      }
      return { fixed: 'nothing', reasons: [] };
    });
  }

  /**
   * Removes every croft table of the module (of the applied spec, or named `table`), in every
   * family; absent tables are fine.
   */
  remove(table?: string): Promise<void> {
    return this.#serial(async () => {
      const name = table ?? this.#required('remove').table;
      const all = allTablesNamed(name);
      const present = this.#owner ? await this.#presentTables(all) : undefined;
      if (present?.length !== 0) await this.#nftFile(renderDelete(present ?? all, present), `remove the rule set of ${name}`);
      if (this.#spec?.table === name) this.#spec = undefined;
    });
  }

  #required(what: string): NftFarmSpec {
    assert.ok(this.#spec, `NftFarm.${what}() before apply() or attach()`);
    return this.#spec;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #nftFile(text: string, what: string): Promise<void> {
    const r = await this.#run(['-f', '-'], text);
    if (r.code !== 0) {
      const said = r.stderr.trim() || r.stdout.trim();
      throw new CroftError('CROFT_ERR_NFT_APPLY', `cannot ${what}: nft ${this.#owner ? 'returned' : 'exited with'} ${r.code}: ${said}${this.#owner ? ownerHint(said) : ''}`);
    }
  }

  /**
   * The table's objects, or undefined when it does not exist. A table with flags (the owner netdev
   * table) is read chain by chain: libnftables 1.0.6 (Debian 12) frees a table's flags before it
   * prints them in JSON (`list table`, `list tables`), a use-after-free (valgrind: "Invalid read"
   * in json_dump_callback of a string freed by json_delete) that corrupted the daemon's heap and
   * aborted it ("corrupted double-linked list") every few hundred listings. JSON is asked only of
   * commands that print no table object; the table names come from the text listing.
   */
  async #listTable(ref: NftTableRef): Promise<NftJsonObject[] | undefined> {
    if (!this.#hasFlags(ref)) {
      const r = await this.#run(['-j', 'list', 'table', ref.family, ref.name]);
      if (r.code !== 0) {
        if (/No such file or directory/.test(r.stderr)) return undefined;
        throw new CroftError('CROFT_ERR_NFT_APPLY', `cannot list table ${ref.family} ${ref.name}: ${r.stderr.trim()}`);
      }
      return this.#parse(r.stdout, `table ${ref.family} ${ref.name}`);
    }
    if ((await this.#presentTables([ref])).length === 0) return undefined;
    const where = `table ${ref.family} ${ref.name}`;
    const chains = (await this.#listJson(['list', 'chains', ref.family], `chains of ${where}`)).filter((o) => o.chain?.table === ref.name);
    const objs = [...chains];
    for (const c of chains) {
      const listed = await this.#listJson(['list', 'chain', ref.family, ref.name, c.chain!.name], `chain ${c.chain!.name} of ${where}`);
      objs.push(...listed.filter((o) => o.rule));
    }
    return objs;
  }

  /** Rendered with table flags (nft-render's bodies(): `flags owner` on the netdev table in owner mode). */
  #hasFlags(ref: NftTableRef): boolean {
    return this.#owner && ref.family === 'netdev';
  }

  async #listJson(args: string[], what: string): Promise<NftJsonObject[]> {
    const r = await this.#run(['-j', ...args]);
    if (r.code !== 0) throw new CroftError('CROFT_ERR_NFT_APPLY', `cannot list ${what}: ${r.stderr.trim()}`);
    return this.#parse(r.stdout, what);
  }

  /** Which of `refs` exist: from the text listing (see #listTable: no JSON of table objects). */
  async #presentTables(refs: NftTableRef[]): Promise<NftTableRef[]> {
    if (refs.length === 0) return [];
    const r = await this.#run(['list', 'tables']);
    if (r.code !== 0) throw new CroftError('CROFT_ERR_NFT_APPLY', `cannot list tables: ${r.stderr.trim()}`);
    const have = [...r.stdout.matchAll(/^table (\S+) (\S+)/gm)].map((m) => ({ family: m[1], name: m[2] }));
    return refs.filter((t) => have.some((h) => h.family === t.family && h.name === t.name));
  }

  async #listOwned(spec: NftFarmSpec): Promise<number[]> {
    const family = familyOf(spec.vip);
    const r = await this.#run(['-j', 'list', 'set', family, spec.table, OWNED_SET]);
    if (r.code !== 0) throw new CroftError('CROFT_ERR_NFT_APPLY', `cannot list set ${family} ${spec.table} ${OWNED_SET}: ${r.stderr.trim()}`);
    const set = this.#parse(r.stdout, `set ${OWNED_SET}`).find((o) => o.set)?.set;
    return (set?.elem ?? []).map(elemNumber).sort((a, b) => a - b);
  }

  #parse(stdout: string, what: string): NftJsonObject[] {
    try {
      return (JSON.parse(stdout) as { nftables: NftJsonObject[] }).nftables;
    } catch (e) {
      throw new CroftError('CROFT_ERR_NFT_APPLY', `nft printed JSON that cannot be read for ${what}: ${(e as Error).message}`, { cause: e });
    }
  }
}
