// Bucket assignment of a farm: which node owns each of the B buckets, computed by every node from
// the same member set, so that all nodes agree without talking about it. Pure: no I/O, no clock.
//
// Weighted rendezvous hashing (highest random weight): for every bucket, each node draws a stable
// pseudo-random u in (0, 1) from a hash of (bucket, node name) and scores -weight / ln(u); the
// highest score owns the bucket. This is the weighted HRW of Schindelhauer & Schomaker, "Weighted
// distributed hash tables" (SPAA 2005): a node's probability of winning a bucket is exactly its
// weight over the sum of weights, and since a node's score never depends on the other nodes,
// removing a node moves only its buckets and adding one moves buckets only to it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

export interface WeightedNode {
  name: string;
  /** Relative share of buckets; 0 means the node never owns a bucket. */
  weight: number;
}

/** Most buckets a farm may have (the config's limit; also bounds the work here). */
export const maxBuckets = 4096;

/** 2^53: u is built from the top 53 bits of the hash, the precision of a double. */
const two53 = 2 ** 53;

/** A stable u in (0, 1) for (bucket, node): the same on every node, every run, every platform. */
export function unitHash(bucket: number, name: string): number {
  // A domain prefix and NUL separators: no (bucket, name) pair can collide with another's text.
  const digest = createHash('sha256').update(`croft-farm-bucket\0${bucket}\0${name}`).digest();
  const high = digest.readUInt32BE(0) >>> 11; // 21 bits
  const low = digest.readUInt32BE(4); // 32 bits
  // (k + 0.5) / 2^53 with k in [0, 2^53): never 0 nor 1, so ln(u) is finite and negative.
  return (high * 2 ** 32 + low + 0.5) / two53;
}

/** The HRW score of a node for a bucket; higher wins. */
export function score(bucket: number, node: WeightedNode): number {
  return node.weight === 0 ? -Infinity : -node.weight / Math.log(unitHash(bucket, node.name));
}

function checkInput(buckets: number, nodes: readonly WeightedNode[]): void {
  assert.ok(Number.isInteger(buckets) && buckets >= 1 && buckets <= maxBuckets, `buckets must be an integer from 1 to ${maxBuckets}, got ${buckets}`);
  const seen = new Set<string>();
  for (const n of nodes) {
    assert.ok(n.name !== '', 'a node name cannot be empty');
    assert.ok(!seen.has(n.name), `node ${n.name} is listed twice`);
    seen.add(n.name);
    assert.ok(Number.isFinite(n.weight) && n.weight >= 0, `weight of ${n.name} must be a finite number >= 0, got ${n.weight}`);
  }
}

/**
 * The owner of every bucket: index = bucket, value = node name, '' when no node has a weight above
 * 0. The result depends only on the set of (name, weight) pairs, never on their order.
 */
export function assignBuckets(buckets: number, nodes: readonly WeightedNode[]): string[] {
  checkInput(buckets, nodes);
  const candidates = nodes.filter((n) => n.weight > 0);
  const map: string[] = [];
  for (let b = 0; b < buckets; b++) {
    let owner = '';
    let best = -Infinity;
    for (const n of candidates) {
      const s = score(b, n);
      // Equal scores are all but impossible; break them by name so the order of `nodes` never matters.
      if (s > best || (s === best && owner !== '' && n.name < owner)) {
        best = s;
        owner = n.name;
      }
    }
    map.push(owner);
  }
  return map;
}

/** Number of buckets each node owns (nodes that own none are absent; unowned buckets are not counted). */
export function loadOf(map: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const owner of map) {
    if (owner === '') continue;
    counts[owner] = (counts[owner] ?? 0) + 1;
  }
  return counts;
}

/** Buckets whose owner differs between two maps of the same size, in increasing order. */
export function movedBuckets(a: readonly string[], b: readonly string[]): number[] {
  assert.equal(a.length, b.length, 'maps of different sizes cannot be compared bucket by bucket');
  const moved: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) moved.push(i);
  return moved;
}

/** The buckets a node owns, in increasing order (what its nft set holds). */
export function bucketsOf(map: readonly string[], node: string): number[] {
  const out: number[] = [];
  map.forEach((owner, i) => {
    if (owner === node) out.push(i);
  });
  return out;
}
