// Wire format of a heartbeat: "CRFT" | version (1 byte) | JSON payload | HMAC-SHA256 (32 bytes) over
// everything before it. The version byte is the format's (JSON + HMAC), not the protocol's: the
// protocol version (src/protocol.ts) is the `proto` field of the payload, absent before protocol 3. Pure functions: decode never throws, whatever the bytes (a datagram socket
// hands us anything anyone on the LAN sends), and everything it returns was checked field by field.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SIGNATURE_RE, type ConfigSignature } from '../config/signature.js';
import type { PeerView } from './mirror-view.js';
import type { Heartbeat, ModuleStatus } from './types.js';

export const MAGIC = Buffer.from('CRFT', 'ascii');
export const VERSION = 1;
const HEADER_BYTES = MAGIC.length + 1;
const MAC_BYTES = 32;
/**
 * The largest heartbeat, sent or accepted. The worst case the shape check allows (64 mirror modules
 * and 64 nodes, every name 64 characters, with protocol 3's config signatures) is about 24 KiB; a
 * usual one (3 nodes, a few modules) under 2 KiB. 32 KiB stays below one datagram on loopback (64 KiB).
 * What a node sends to a peer of protocol 2 (which accepts 16 KiB) is protocol 2's shape, as large as before.
 */
export const MAX_DATAGRAM_BYTES = 32 * 1024;

// Bounds of the shape check. Names are short identifiers from cluster.yaml and module files.
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const STATE_RE = /^[A-Za-z_]{1,16}$/;
const MAX_MEMBERS = 64;
const MAX_MODULES = 64;
const MAX_LANS = 16;

export type DecodeResult = { ok: true; hb: Heartbeat } | { ok: false; reason: 'malformed' | 'bad_mac' };

function mac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** Encodes and signs. Asserts (programmer error) that the heartbeat passes the same shape check as decode. */
export function encodeHeartbeat(hb: Heartbeat, key: Buffer): Buffer {
  const body = Buffer.concat([MAGIC, Buffer.from([VERSION]), Buffer.from(JSON.stringify(hb), 'utf8')]);
  const out = Buffer.concat([body, mac(key, body)]);
  if (out.length > MAX_DATAGRAM_BYTES) throw new RangeError(`heartbeat of ${out.length} bytes exceeds ${MAX_DATAGRAM_BYTES}`);
  if (parseHeartbeat(hb) === null) throw new TypeError('encodeHeartbeat: heartbeat does not pass the shape check');
  return out;
}

export function decodeHeartbeat(buf: Buffer, key: Buffer): DecodeResult {
  try {
    if (!Buffer.isBuffer(buf)) return { ok: false, reason: 'malformed' };
    if (buf.length > MAX_DATAGRAM_BYTES || buf.length < HEADER_BYTES + 2 + MAC_BYTES) return { ok: false, reason: 'malformed' };
    if (!buf.subarray(0, MAGIC.length).equals(MAGIC) || buf[MAGIC.length] !== VERSION) return { ok: false, reason: 'malformed' };
    const body = buf.subarray(0, buf.length - MAC_BYTES);
    const got = buf.subarray(buf.length - MAC_BYTES);
    // Authenticate before parsing: unauthenticated bytes never reach JSON.parse.
    if (!timingSafeEqual(mac(key, body), got)) return { ok: false, reason: 'bad_mac' };
    const json: unknown = JSON.parse(body.subarray(HEADER_BYTES).toString('utf8'));
    const hb = parseHeartbeat(json);
    return hb === null ? { ok: false, reason: 'malformed' } : { ok: true, hb };
  } catch {
    return { ok: false, reason: 'malformed' };
  }
}

// ---- strict shape check: rebuilds a fresh object from checked fields, so no extra key survives ----

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasExactKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  const own = Object.keys(o);
  return own.length === keys.length && keys.every((k) => Object.prototype.hasOwnProperty.call(o, k));
}

function isName(v: unknown): v is string {
  return typeof v === 'string' && NAME_RE.test(v) && v !== '__proto__' && v !== 'constructor' && v !== 'prototype';
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseModules(v: unknown): Record<string, ModuleStatus> | null {
  if (!isPlainObject(v)) return null;
  const names = Object.keys(v);
  if (names.length > MAX_MODULES) return null;
  const out: Record<string, ModuleStatus> = {};
  for (const name of names) {
    const m = v[name];
    if (!isName(name) || !isPlainObject(m)) return null;
    const withMirror = Object.prototype.hasOwnProperty.call(m, 'mirror');
    if (!hasExactKeys(m, withMirror ? ['state', 'sinceMs', 'mirror'] : ['state', 'sinceMs'])) return null;
    if (typeof m.state !== 'string' || !STATE_RE.test(m.state)) return null;
    if (typeof m.sinceMs !== 'number' || !Number.isFinite(m.sinceMs) || m.sinceMs < 0) return null;
    if (!withMirror) {
      out[name] = { state: m.state, sinceMs: m.sinceMs };
      continue;
    }
    const mirror = parsePeerView(m.mirror);
    if (mirror === null) return null;
    out[name] = { state: m.state, sinceMs: m.sinceMs, mirror };
  }
  return out;
}

const MIRROR_STATES: readonly string[] = ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND'];

/** A mirror module's announcement (src/membership/mirror-view.ts PeerView), checked field by field. */
function parsePeerView(v: unknown): PeerView | null {
  if (!isPlainObject(v) || !hasExactKeys(v, ['state', 'dataUpToDate', 'generation', 'eligible', 'forced'])) return null;
  const { state, dataUpToDate, generation, eligible, forced } = v;
  if (typeof state !== 'string' || !MIRROR_STATES.includes(state)) return null;
  if (typeof dataUpToDate !== 'boolean' || typeof eligible !== 'boolean' || typeof forced !== 'boolean' || !isCount(generation)) return null;
  return { state: state as PeerView['state'], dataUpToDate, generation, eligible, forced };
}

const BASE_KEYS = ['cluster', 'from', 'lan', 'incarnation', 'seq', 'view', 'modules'] as const;
/** Protocol 3's fields, all three or none (a heartbeat of protocol 2 has none: backward tolerance). */
const INFO_KEYS = ['proto', 'pkg', 'cfg'] as const;
const PKG_RE = /^[0-9A-Za-z.+~-]{1,32}$/;
/** A protocol version number is small; the bound keeps a forged-but-signed one harmless anyway. */
const MAX_PROTO = 65535;

/** The sender's [current, min] protocol range: min <= current, both in 1..MAX_PROTO. */
function parseProto(v: unknown): [number, number] | null {
  if (!Array.isArray(v) || v.length !== 2) return null;
  const [cur, min] = v as unknown[];
  if (!isCount(cur) || !isCount(min) || min < 1 || min > cur || cur > MAX_PROTO) return null;
  return [cur, min];
}

function parseSignature(v: unknown): ConfigSignature | null {
  if (!isPlainObject(v) || !hasExactKeys(v, ['cluster', 'modules'])) return null;
  if (typeof v.cluster !== 'string' || !SIGNATURE_RE.test(v.cluster) || !isPlainObject(v.modules)) return null;
  const names = Object.keys(v.modules);
  if (names.length > MAX_MODULES) return null;
  const modules: Record<string, string> = {};
  for (const n of names) {
    const s = v.modules[n];
    if (!isName(n) || typeof s !== 'string' || !SIGNATURE_RE.test(s)) return null;
    modules[n] = s;
  }
  return { cluster: v.cluster, modules };
}

/** Returns a checked copy of `v`, or null when any field is missing, extra, mistyped or out of bounds. */
export function parseHeartbeat(v: unknown): Heartbeat | null {
  if (!isPlainObject(v)) return null;
  const withInfo = Object.prototype.hasOwnProperty.call(v, 'proto');
  if (!hasExactKeys(v, withInfo ? [...BASE_KEYS, ...INFO_KEYS] : BASE_KEYS)) return null;
  const { cluster, from, lan, incarnation, seq, view, modules } = v;
  if (!isName(cluster) || !isName(from)) return null;
  if (!isCount(lan) || lan >= MAX_LANS || !isCount(incarnation) || !isCount(seq)) return null;
  if (!isPlainObject(view) || !hasExactKeys(view, ['epoch', 'members'])) return null;
  if (!isCount(view.epoch) || !Array.isArray(view.members) || view.members.length > MAX_MEMBERS) return null;
  const members: string[] = [];
  for (const m of view.members as unknown[]) {
    if (!isName(m)) return null;
    members.push(m);
  }
  const mods = parseModules(modules);
  if (mods === null) return null;
  const hb: Heartbeat = { cluster, from, lan, incarnation, seq, view: { epoch: view.epoch, members }, modules: mods };
  if (!withInfo) return hb;
  const proto = parseProto(v.proto);
  const cfg = parseSignature(v.cfg);
  if (proto === null || cfg === null || typeof v.pkg !== 'string' || !PKG_RE.test(v.pkg)) return null;
  return { ...hb, proto, pkg: v.pkg, cfg };
}
