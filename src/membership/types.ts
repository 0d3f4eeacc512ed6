// Contract of the membership layer: the pure core (core.ts), the wire codec (codec.ts) and the UDP
// driver (udp.ts). The core makes every decision; it never reads a clock or touches a socket.
import type { ConfigSignature } from '../config/signature.js';
import type { PeerView } from './mirror-view.js';

/** What one node says about one of its modules, carried in every heartbeat. */
export interface ModuleStatus {
  /** STOP | WAIT | UP (light and farm), ALONE | PRIM | SECOND (mirror). */
  state: string;
  /**
   * Wall-clock ms of the last state change on that node (for display only). A mirror module gives
   * the time of the last change of its announcement, so that the change is sent at once.
   */
  sinceMs: number;
  /** kind: mirror: what the node announces to its peer (mirror/machine.ts announce). */
  mirror?: PeerView;
}

export interface View {
  /** Increases by one on every change of `members` seen by the node that owns the view. */
  epoch: number;
  /** Sorted names of the nodes that the owner considers up, itself included. */
  members: string[];
}

/** The authenticated content of a heartbeat. */
export interface Heartbeat {
  cluster: string;
  from: string;
  /** Index of the LAN it was sent on (in ClusterConfig.lans); signed, so it cannot be replayed on another LAN. */
  lan: number;
  /** Identifies one run of the sender's daemon; a restart picks a larger one (start time in ms). */
  incarnation: number;
  /** Increases by one on every heartbeat of an incarnation (the same seq goes out on every LAN). */
  seq: number;
  view: View;
  modules: Record<string, ModuleStatus>;
  /**
   * Protocol 3 and later (src/protocol.ts); absent in a heartbeat of protocol 2 (the builds before),
   * and in what this node sends to a peer that announced protocol 2 (it refuses unknown fields).
   * The sender's protocol range [current, min].
   */
  proto?: [number, number];
  /** The sender's package version ("0.1.0"). */
  pkg?: string;
  /** The sender's configuration signature (src/config/signature.ts). */
  cfg?: ConfigSignature;
}

/** What a node announces of its build and configuration (protocol 3 and later). */
export interface NodeInfo {
  proto: [number, number];
  pkg: string;
  cfg: ConfigSignature;
}

export type DropReason =
  | 'malformed'      // not a croft heartbeat, bad JSON, bad shape, too large
  | 'bad_mac'        // wrong key or altered in transit
  | 'wrong_cluster'  // authenticated but for another cluster name
  | 'unknown_node'   // authenticated but from a node not in cluster.yaml
  | 'wrong_lan'      // the signed LAN index does not match the socket it arrived on
  | 'replay'         // (incarnation, seq) not newer than the last accepted on that LAN
  | 'future_incarnation' // incarnation above the receiver's wall clock + INCARNATION_AHEAD_MS
  | 'wrong_source'   // the UDP source is not the sending node's configured address on that LAN (driver)
  | 'version'       // authenticated, but its protocol range does not overlap ours (src/protocol.ts)
  | 'self';          // our own name (a loop, or a misconfigured twin)

export type MembershipEvent =
  /** Time passed: send heartbeats that are due, declare down peers silent for timeoutMs. */
  | { type: 'tick' }
  /**
   * A heartbeat that passed the codec (MAC verified) arrived on `lan`. `wallMs`: the receiver's wall
   * clock (incarnations are wall-clock start times); when given, an incarnation above
   * wallMs + INCARNATION_AHEAD_MS is dropped (future_incarnation). Simulations whose incarnations
   * are small counters leave it out.
   */
  | { type: 'heartbeat'; lan: number; hb: Heartbeat; wallMs?: number }
  /** This node's modules changed: the next heartbeat carries them; one goes out at once. */
  | { type: 'local_modules'; modules: Record<string, ModuleStatus> }
  /** This node's configuration signature changed (reload, push): one heartbeat goes out at once. */
  | { type: 'local_config'; cfg: ConfigSignature };

export type MembershipAction =
  /** Send this heartbeat to every peer on every LAN (the driver sets `lan` per socket and signs). */
  | { type: 'send'; hb: Omit<Heartbeat, 'lan'> }
  | { type: 'peer_up'; node: string; cause: string }
  | { type: 'peer_down'; node: string; cause: string }
  | { type: 'view_change'; view: View; cause: string }
  | { type: 'drop'; reason: DropReason; from: string; lan: number; detail?: string };

export interface PeerInfo {
  name: string;
  up: boolean;
  /** Monotonic ms (core time) of the last accepted heartbeat, per LAN; null when never heard. */
  lastHeardMs: (number | null)[];
  incarnation: number | null;
  /** The view that peer last announced. */
  view: View | null;
  modules: Record<string, ModuleStatus>;
  /** The protocol range [current, min] of its last accepted heartbeat ([2, 2] when it announced none); null before. */
  proto: [number, number] | null;
  /** Its package version and configuration signature; null before, or from a node of protocol 2. */
  pkg: string | null;
  cfg: ConfigSignature | null;
}
