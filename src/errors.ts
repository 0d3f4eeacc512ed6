// The catalogue of operating errors (fastify's errors file is the model): each has a stable code, a
// message that tells the user what to do, and the HTTP status the API answers when one reaches it
// (4xx: the request or the command's moment is wrong; 5xx: this node could not do it). Programmer
// errors are assertions (node:assert), not these. The Rust crates raise some of these codes
// (CROFT_ERR_MIRROR_*): test/unit/errors.test.ts checks each of theirs is listed here.

export interface ErrorDefinition {
  readonly description: string;
  /** What the API answers with this error (400..599). */
  readonly statusCode: number;
}

const def = (description: string, statusCode: number): ErrorDefinition => ({ description, statusCode });

export const codes = {
  CROFT_ERR_CONFIG: def('Invalid configuration', 500),
  CROFT_ERR_CONFIG_READ: def('A configuration file cannot be read', 500),
  CROFT_ERR_USAGE: def('Bad command line', 400),
  CROFT_ERR_PUSH_AUTH: def('The pushed configuration is not sealed with this cluster\'s key (forged, altered, or another cluster)', 401),
  CROFT_ERR_PUSH_REPLAY: def('The pushed configuration is a replay, older than the last one accepted, or its clock is too far off', 409),
  CROFT_ERR_PUSH_BUNDLE: def('The pushed configuration bundle is malformed (file names, modes, sizes)', 400),
  CROFT_ERR_RELOAD_RESTART: def('The new configuration changes cluster.yaml, which a reload cannot apply: restart the daemon', 409),
  // CROFT_ERR_API: the CLI's "the daemon answered with an error", and the API's answer to a failure
  // that is no CroftError (with that failure's own status when it has one, fastify's 4xx).
  CROFT_ERR_API: def('The croft daemon answered with an error', 500),
  CROFT_ERR_API_UNREACHABLE: def('The croft daemon cannot be reached: is `croft daemon` running on this node?', 503),
  CROFT_ERR_API_SOCKET: def('The local API socket cannot be made root-only (see its folder\'s owner and mode)', 500),
  CROFT_ERR_API_INSECURE: def('The CLI will not send a credential in clear over the network: use https (api.tls) or the local socket', 400),
  CROFT_ERR_API_HOST: def('The request\'s Host is not a name this API serves (add it to api.allowed_hosts)', 421),
  CROFT_ERR_API_ORIGIN: def('A cross-site or cross-origin command was refused', 403),
  CROFT_ERR_API_RATE: def('Too many failed logins from this source: try again later', 429),
  CROFT_ERR_API_FORBIDDEN: def('Commands over TCP need a credential and none is configured (api.tokens or api.users)', 403),
  CROFT_ERR_API_BUSY: def('Too many web console streams are open on this node: close some console tabs', 503),
  CROFT_ERR_API_ROLE: def('The credential\'s role may not do this (viewer: read only; operator: commands; admin: also reload)', 403),
  CROFT_ERR_UNKNOWN_MODULE: def('No such module in the configuration', 404),
  CROFT_ERR_UNKNOWN_NODE: def('This node is not in cluster.yaml', 404),
  CROFT_ERR_SCRIPT_TIMEOUT: def('A module script ran past its timeout and was killed', 500),
  CROFT_ERR_SCRIPT_FAILED: def('A module script exited with an error', 500),
  CROFT_ERR_BIND: def('Cannot listen on a configured address', 500),
  CROFT_ERR_LAB: def('Lab operation failed', 500),
  CROFT_ERR_NATIVE: def('The native addon failed', 500),
  CROFT_ERR_NFT_APPLY: def('nft refused or failed to apply the farm rule set: see its message (is nftables installed, is the interface up?)', 500),
  CROFT_ERR_VIP: def('Cannot add or remove the virtual IP on the interface (does the interface exist?)', 500),
  CROFT_ERR_MIRROR_DIR: def('The replicated directory cannot be opened (does it exist, is it a directory?)', 500),
  CROFT_ERR_MIRROR_MOUNT: def('The mirror cannot be mounted (is /dev/fuse there, fusermount3 installed, nothing mounted there already?)', 500),
  CROFT_ERR_MIRROR_PEER_UNREACHABLE: def('The mirror peer cannot be reached (is croft running there, is the port open?)', 502),
  CROFT_ERR_MIRROR_PEER_AUTH: def('The mirror peer refused the connection: both nodes need the same cluster key', 502),
  CROFT_ERR_MIRROR_UNMOUNT: def('The mirror cannot be unmounted cleanly (a process still uses it: stop the application first)', 500),
  CROFT_ERR_MIRROR_REPLICA: def('The mirror replica cannot start (does its directory exist, is the port free?)', 500),
  CROFT_ERR_MIRROR_DIRTY_LOG: def('The mirror dirty log cannot be opened or written (is its directory writable, is it already open by another mount or reader?)', 500),
  CROFT_ERR_MIRROR_REFUSED: def('The mirror refused the command in its current state (see the reason: e.g. run swap on the PRIM)', 409),
  CROFT_ERR_MIRROR_REINTEGRATION: def('The mirror reintegration failed (the mount stays alone and its dirty log intact: see the reason, then retry)', 500),
  CROFT_ERR_MIRROR_VERIFY: def('The mirror verify could not run (is the mirror connected to its peer, is the peer reachable?)', 503),
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof codes;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(codes, code);
}

export class CroftError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CroftError';
    this.code = code;
  }

  /**
   * The HTTP status of the code (fastify reads an error's statusCode). A getter, not an own field:
   * an error logged or serialized carries the same fields as before.
   */
  get statusCode(): number {
    return codes[this.code].statusCode;
  }
}
