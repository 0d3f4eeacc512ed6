// Config agreement (issue 12, part 3): this node's configuration signature against what each up peer
// announces in its heartbeats (src/config/signature.ts). THE place where a "config mismatch" is
// detected: ConfigAgreement.check returns the differences that appeared and those that went, and the
// daemon (top/daemon/daemon.ts, checkAgreement) logs them and emits 'config_mismatch' and
// 'config_agreement' events, which a notification hook subscribes to.
import { signatureDifferences, type ConfigSignature } from '../../src/config/signature.js';
import type { PeerInfo } from '../../src/membership/types.js';

export interface ConfigMismatch {
  node: string;
  /** 'cluster.yaml' and the names of the modules whose files differ (or exist on one side only), sorted. */
  differs: string[];
}

/** The up peers whose announced signature differs from `mine` (peers of protocol 2 announce none: not compared). */
export function configMismatches(mine: ConfigSignature, peers: readonly PeerInfo[]): ConfigMismatch[] {
  const out: ConfigMismatch[] = [];
  for (const p of peers) {
    if (!p.up || p.cfg === null) continue;
    const differs = signatureDifferences(mine, p.cfg);
    if (differs.length > 0) out.push({ node: p.name, differs });
  }
  return out;
}

/** Remembers the differences last seen per peer, so that each change is told once. */
export class ConfigAgreement {
  /** Peer -> its differences, joined; bounded by the nodes of cluster.yaml. */
  private readonly known = new Map<string, string>();

  check(mine: ConfigSignature, peers: readonly PeerInfo[]): { appeared: ConfigMismatch[]; resolved: string[]; current: ConfigMismatch[] } {
    const current = configMismatches(mine, peers);
    const appeared: ConfigMismatch[] = [];
    const seen = new Set<string>();
    for (const m of current) {
      seen.add(m.node);
      const key = m.differs.join(',');
      if (this.known.get(m.node) !== key) appeared.push(m);
      this.known.set(m.node, key);
    }
    const resolved: string[] = [];
    for (const node of [...this.known.keys()]) {
      if (seen.has(node)) continue;
      this.known.delete(node);
      // A peer gone down is not "in agreement": its difference is told again if it comes back with it.
      if (peers.some((p) => p.name === node && p.up && p.cfg !== null)) resolved.push(node);
    }
    return { appeared, resolved, current };
  }
}
