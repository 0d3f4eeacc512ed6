// The catalogue of operating errors (fastify's errors file is the model): each has a stable code and
// a message that tells the user what to do. Programmer errors are assertions (node:assert), not these.

export const codes = {
  CROFT_ERR_CONFIG: 'Invalid configuration',
  CROFT_ERR_CONFIG_READ: 'A configuration file cannot be read',
  CROFT_ERR_USAGE: 'Bad command line',
  CROFT_ERR_API: 'The croft daemon answered with an error',
  CROFT_ERR_API_UNREACHABLE: 'The croft daemon cannot be reached: is `croft daemon` running on this node?',
  CROFT_ERR_API_SOCKET: 'The local API socket cannot be made root-only (see its folder\'s owner and mode)',
  CROFT_ERR_API_INSECURE: 'The CLI will not send a credential in clear over the network: use https (api.tls) or the local socket',
  CROFT_ERR_UNKNOWN_MODULE: 'No such module in the configuration',
  CROFT_ERR_UNKNOWN_NODE: 'This node is not in cluster.yaml',
  CROFT_ERR_SCRIPT_TIMEOUT: 'A module script ran past its timeout and was killed',
  CROFT_ERR_SCRIPT_FAILED: 'A module script exited with an error',
  CROFT_ERR_BIND: 'Cannot listen on a configured address',
  CROFT_ERR_LAB: 'Lab operation failed',
  CROFT_ERR_NATIVE: 'The native addon failed',
  CROFT_ERR_NFT_APPLY: 'nft refused or failed to apply the farm rule set: see its message (is nftables installed, is the interface up?)',
  CROFT_ERR_VIP: 'Cannot add or remove the virtual IP on the interface (does the interface exist?)',
  CROFT_ERR_MIRROR_DIR: 'The replicated directory cannot be opened (does it exist, is it a directory?)',
  CROFT_ERR_MIRROR_MOUNT: 'The mirror cannot be mounted (is /dev/fuse there, fusermount3 installed, nothing mounted there already?)',
  CROFT_ERR_MIRROR_PEER_UNREACHABLE: 'The mirror peer cannot be reached (is croft running there, is the port open?)',
  CROFT_ERR_MIRROR_PEER_AUTH: 'The mirror peer refused the connection: both nodes need the same cluster key',
  CROFT_ERR_MIRROR_UNMOUNT: 'The mirror cannot be unmounted cleanly (a process still uses it: stop the application first)',
  CROFT_ERR_MIRROR_REPLICA: 'The mirror replica cannot start (does its directory exist, is the port free?)',
  CROFT_ERR_MIRROR_DIRTY_LOG: 'The mirror dirty log cannot be opened or written (is its directory writable, is it already open by another mount or reader?)',
  CROFT_ERR_MIRROR_REFUSED: 'The mirror refused the command in its current state (see the reason: e.g. run swap on the PRIM)',
  CROFT_ERR_MIRROR_REINTEGRATION: 'The mirror reintegration failed (the mount stays alone and its dirty log intact: see the reason, then retry)',
  CROFT_ERR_MIRROR_VERIFY: 'The mirror verify could not run (is the mirror connected to its peer, is the peer reachable?)',
} as const;

export type ErrorCode = keyof typeof codes;

export class CroftError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CroftError';
    this.code = code;
  }
}
