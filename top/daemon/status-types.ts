// What `croft status` (GET /api/v1/status) answers: nodes as this node sees them (with their versions
// and whether their configuration differs from this node's), modules on every node.
import type { ModuleStatus, View } from '../../src/membership/types.js';
import type { ProtocolRange } from '../../src/protocol.js';
import type { ConfigMismatch } from './agreement.js';
import type { MaintenanceState } from './maintenance.js';

export interface NodeStatus {
  name: string;
  /** UP or DOWN as seen from this node; the local node is always UP. */
  state: 'UP' | 'DOWN';
  self: boolean;
  /** ms since the last heartbeat on each LAN (null: never heard); null for self. */
  lastHeardAgoMs: (number | null)[] | null;
  view: View | null;
  /** The node's croft package version and newest protocol version; null when not known (down, or protocol 2 announces no package). */
  package: string | null;
  protocol: number | null;
  /** What differs from this node's configuration ('cluster.yaml', module names); null when not known. */
  configDiffers: string[] | null;
  /** The signature of its cluster.yaml (src/config/signature.ts; the web console shows it); null when not known. */
  configSignature: string | null;
}

export interface ClusterStatus {
  cluster: string;
  node: string;
  incarnation: number;
  view: View;
  converged: boolean;
  lans: string[];
  nodes: NodeStatus[];
  /** module -> node -> status, for every node that runs the module (STOP when unknown or down); configDiffers: nodes whose files of that module differ from this node's. */
  modules: Record<string, { kind: string; nodes: Record<string, ModuleStatus & { known: boolean }>; configDiffers: string[] }>;
  /** The protocol versions this node speaks. */
  protocol: ProtocolRange;
  /** Up nodes do not all run the same package and protocol version (a rolling upgrade under way). */
  mixedVersions: boolean;
  /** Up nodes whose configuration differs from this node's, with what differs. */
  configMismatch: ConfigMismatch[];
  /** What is in maintenance on this node (the node itself, modules), persisted (maintenance.ts). */
  maintenance: MaintenanceState;
}
