// croft's protocol version (rolling upgrade, README "Upgrading"): one number for the heartbeats
// (their `proto` field) and the mirror's replication handshake (crates/croft-mirror/src/wire/handshake.rs
// VERSION and VERSION_MIN: the same numbers). A build speaks every version from PROTOCOL_MIN to
// PROTOCOL_VERSION; two nodes work together when their ranges overlap, at the lower current version:
// so a node of the next release (which still speaks this one) joins a cluster of this release, and a
// node more than one release apart is refused with both versions in the log and a counter.
//   2: builds before versions were announced (heartbeats without `proto`, handshake version 2).
//   3: heartbeats announce the protocol range, the package version and the config signature;
//      the handshake negotiates (its sessions are version 2's otherwise).
import fs from 'node:fs';
import path from 'node:path';
import { CroftError } from './errors.js';
import { repoRoot } from './paths.js';

export const PROTOCOL_VERSION = 3;
export const PROTOCOL_MIN = 2;

/** The versions one node speaks, `min..=current`. */
export interface ProtocolRange {
  current: number;
  min: number;
}

/**
 * TEST ONLY: makes this process speak an older protocol version (PROTOCOL_MIN..PROTOCOL_VERSION),
 * to stand for "a node of the previous release" in the rolling-upgrade lab test with the very same
 * build. Read only when set; a value outside the range stops the daemon; the daemon logs a warning
 * at start when it is set. The long, explicit name is so that nobody sets it by mistake.
 */
export const TEST_PROTOCOL_ENV = 'CROFT_TEST_PROTOCOL_VERSION';

/** The versions this process speaks (this build's, unless TEST_PROTOCOL_ENV lowers the current one). */
export function localProtocol(env: NodeJS.ProcessEnv = process.env): ProtocolRange {
  const raw = env[TEST_PROTOCOL_ENV];
  if (raw === undefined || raw === '') return { current: PROTOCOL_VERSION, min: PROTOCOL_MIN };
  const v = Number(raw);
  if (!Number.isInteger(v) || v < PROTOCOL_MIN || v > PROTOCOL_VERSION) {
    throw new CroftError('CROFT_ERR_USAGE', `${TEST_PROTOCOL_ENV}=${raw}: a test-only setting that lowers the protocol version; `
      + `it must be an integer from ${PROTOCOL_MIN} to ${PROTOCOL_VERSION} (unset it to run normally)`);
  }
  return { current: v, min: PROTOCOL_MIN };
}

/** Two nodes work together when their ranges overlap (each speaks the other's current version or lower). */
export function compatible(a: ProtocolRange, b: ProtocolRange): boolean {
  return a.current >= b.min && b.current >= a.min;
}

let pkg: string | null = null;

/** This build's package version (package.json), e.g. "0.1.0". */
export function packageVersion(): string {
  if (pkg === null) {
    try {
      const v = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version?: unknown }).version;
      pkg = typeof v === 'string' && /^[0-9A-Za-z.+~-]{1,32}$/.test(v) ? v : 'unknown';
    } catch {
      pkg = 'unknown';
    }
  }
  return pkg;
}
