// The bundle of `croft config push` (issue 12, part 3): a node's config folder, sealed for one node.
//
// What is sent: every regular file under the config folder (cluster.yaml, modules/, the scripts and
// key file kept there...), by relative path, with its permission bits; names starting with "." are
// left out (editor and version-control files), and a symlink or special file makes the push fail
// (a link may lead outside the folder: copy what it points to into the folder instead).
//
// Seal: AES-256-GCM (node:crypto, OpenSSL) under a key derived from the cluster key by HKDF-SHA256
// with croft's label, a random 96-bit IV; the header (sender, receiver, time) is the associated
// data. So only a holder of the cluster key can make a bundle a node accepts (the key itself and
// API secrets in cluster.yaml cross the network encrypted, over http too), and any change to a byte
// fails the tag. A replay is refused by the receiver: a bundle is for one named node, within
// PUSH_WINDOW_MS of its clock, and newer than the last bundle it accepted (top/daemon/push.ts).
//
//   "CRFTPUSH" | u16 BE header length | header JSON | IV (12) | ciphertext | tag (16)
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CroftError } from '../errors.js';

export const PUSH_MAGIC = Buffer.from('CRFTPUSH', 'ascii');
/** A bundle's files, together. Config folders are a few KiB; scripts a few more. */
export const PUSH_MAX_BYTES = 8 * 1024 * 1024;
export const PUSH_MAX_FILES = 512;
/** One file, as the config loader's own bound (src/config/load.ts MAX_CONFIG_BYTES). */
export const PUSH_MAX_FILE_BYTES = 1024 * 1024;
const MAX_DEPTH = 8;
const MAX_HEADER_BYTES = 1024;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Only permission bits a config file needs: no set-id, no sticky, never writable by group or others. */
const MODE_MASK = 0o755;
/** One path segment: starts with a letter, digit or underscore (so never ".", ".." nor hidden). */
const SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/;
const NODE_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export interface BundleFile {
  /** Relative, "/"-separated, each segment SEGMENT_RE. */
  path: string;
  /** Permission bits (within 0o755). */
  mode: number;
  data: Buffer;
}

export interface PushHeader {
  v: 1;
  from: string;
  to: string;
  /** Sender's wall clock, ms. */
  at: number;
}

export interface PushPayload {
  files: BundleFile[];
  /** The receiver reloads after the swap (`croft config push --reload`). */
  reload: boolean;
}

function bundleError(message: string): CroftError {
  return new CroftError('CROFT_ERR_PUSH_BUNDLE', message);
}

/** Checks a relative file name of a bundle; the reason it is refused, or null. */
export function badPath(p: unknown): string | null {
  if (typeof p !== 'string' || p.length === 0 || p.length > 512) return 'not a file name of 1 to 512 characters';
  const segs = p.split('/');
  if (segs.length > MAX_DEPTH) return `deeper than ${MAX_DEPTH} folders`;
  for (const s of segs) {
    if (!SEGMENT_RE.test(s)) return `"${s.slice(0, 64)}" is not a plain file or folder name (letters, digits, _ . + -; not starting with "."; no "..", no absolute path)`;
  }
  return null;
}

/** Reads the config folder into a bundle's file list (see the header comment for what is sent). */
export function collectConfigFiles(dir: string): BundleFile[] {
  const out: BundleFile[] = [];
  let total = 0;
  const walk = (rel: string): void => {
    const abs = path.join(dir, rel);
    for (const e of fs.readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const why = badPath(r);
      if (why !== null) throw bundleError(`${path.join(dir, r)}: cannot be pushed: ${why}`);
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isDirectory()) {
        walk(r);
      } else if (st.isFile()) {
        if (st.size > PUSH_MAX_FILE_BYTES) throw bundleError(`${path.join(dir, r)} is ${st.size} bytes; a pushed file is at most ${PUSH_MAX_FILE_BYTES}`);
        const data = fs.readFileSync(path.join(dir, r));
        total += data.length;
        if (total > PUSH_MAX_BYTES) throw bundleError(`${dir} holds more than ${PUSH_MAX_BYTES} bytes: too large to push`);
        out.push({ path: r, mode: st.mode & MODE_MASK, data });
        if (out.length > PUSH_MAX_FILES) throw bundleError(`${dir} holds more than ${PUSH_MAX_FILES} files: too many to push`);
      } else {
        throw bundleError(`${path.join(dir, r)} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}: `
          + 'only regular files are pushed (a link could lead outside the folder); put the file itself in the folder');
      }
    }
  };
  walk('');
  if (!out.some((f) => f.path === 'cluster.yaml')) throw bundleError(`${dir} has no cluster.yaml: not a config folder`);
  return out;
}

function pushKey(clusterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', clusterKey, 'croft-config-push', 'croft config push v1', 32));
}

export function sealBundle(clusterKey: Buffer, header: PushHeader, payload: PushPayload): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(h.length);
  const aad = Buffer.concat([PUSH_MAGIC, len, h]);
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', pushKey(clusterKey), iv);
  c.setAAD(aad);
  const plain = Buffer.from(JSON.stringify({
    reload: payload.reload,
    files: payload.files.map((f) => ({ path: f.path, mode: f.mode, data: f.data.toString('base64') })),
  }), 'utf8');
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([aad, iv, body, c.getAuthTag()]);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Opens a bundle: its header and payload, checked field by field. Throws CROFT_ERR_PUSH_AUTH when
 * the seal does not open under this key (forged, altered, another cluster), CROFT_ERR_PUSH_BUNDLE
 * when it is not a bundle or its content is malformed (bad file names, modes, sizes, duplicates).
 * Nothing unauthenticated is parsed but the header, which is bounded and checked first.
 */
export function openBundle(clusterKey: Buffer, buf: Buffer): { header: PushHeader; payload: PushPayload } {
  if (!Buffer.isBuffer(buf) || buf.length < PUSH_MAGIC.length + 2 + IV_BYTES + TAG_BYTES || !buf.subarray(0, PUSH_MAGIC.length).equals(PUSH_MAGIC)) {
    throw bundleError('not a croft config bundle');
  }
  const hlen = buf.readUInt16BE(PUSH_MAGIC.length);
  const hend = PUSH_MAGIC.length + 2 + hlen;
  if (hlen > MAX_HEADER_BYTES || buf.length < hend + IV_BYTES + TAG_BYTES) throw bundleError('not a croft config bundle (bad header length)');
  let header: PushHeader;
  try {
    const h: unknown = JSON.parse(buf.subarray(PUSH_MAGIC.length + 2, hend).toString('utf8'));
    if (!isObj(h) || Object.keys(h).length !== 4 || h.v !== 1 || typeof h.from !== 'string' || !NODE_RE.test(h.from)
      || typeof h.to !== 'string' || !NODE_RE.test(h.to) || !Number.isSafeInteger(h.at) || (h.at as number) < 0) throw new Error('shape');
    header = { v: 1, from: h.from, to: h.to, at: h.at as number };
  } catch {
    throw bundleError('not a croft config bundle (bad header)');
  }
  const iv = buf.subarray(hend, hend + IV_BYTES);
  const tag = buf.subarray(buf.length - TAG_BYTES);
  let plain: Buffer;
  try {
    const d = createDecipheriv('aes-256-gcm', pushKey(clusterKey), iv);
    d.setAAD(buf.subarray(0, hend));
    d.setAuthTag(tag);
    plain = Buffer.concat([d.update(buf.subarray(hend + IV_BYTES, buf.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new CroftError('CROFT_ERR_PUSH_AUTH', 'the pushed configuration does not open under this cluster\'s key: '
      + 'forged, altered on the way, or from another cluster (refused and counted)');
  }
  return { header, payload: parsePayload(plain) };
}

function parsePayload(plain: Buffer): PushPayload {
  let v: unknown;
  try {
    v = JSON.parse(plain.toString('utf8'));
  } catch {
    throw bundleError('the bundle\'s content is not JSON');
  }
  if (!isObj(v) || typeof v.reload !== 'boolean' || !Array.isArray(v.files)) throw bundleError('the bundle\'s content has no file list');
  if (v.files.length === 0 || v.files.length > PUSH_MAX_FILES) throw bundleError(`a bundle holds 1 to ${PUSH_MAX_FILES} files`);
  const files: BundleFile[] = [];
  const names = new Set<string>();
  let total = 0;
  for (const f of v.files as unknown[]) {
    if (!isObj(f) || Object.keys(f).length !== 3) throw bundleError('a file entry is malformed');
    const why = badPath(f.path);
    if (why !== null) throw bundleError(`file name ${JSON.stringify(String(f.path).slice(0, 100))} refused: ${why}`);
    const p = f.path as string;
    if (typeof f.mode !== 'number' || !Number.isInteger(f.mode) || (f.mode & ~MODE_MASK) !== 0) {
      throw bundleError(`${p}: mode ${String(f.mode)} refused: only permission bits within 0755 (no set-id, never writable by group or others)`);
    }
    if (typeof f.data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(f.data)) throw bundleError(`${p}: data is not base64`);
    const data = Buffer.from(f.data, 'base64');
    if (data.length > PUSH_MAX_FILE_BYTES) throw bundleError(`${p}: larger than ${PUSH_MAX_FILE_BYTES} bytes`);
    total += data.length;
    if (total > PUSH_MAX_BYTES) throw bundleError(`the files are larger than ${PUSH_MAX_BYTES} bytes together`);
    if (names.has(p)) throw bundleError(`${p} is listed twice`);
    names.add(p);
    files.push({ path: p, mode: f.mode, data });
  }
  // A name that is both a file and a folder of another file ("a" and "a/b") cannot be written.
  for (const p of names) {
    const segs = p.split('/');
    for (let i = 1; i < segs.length; i++) {
      const prefix = segs.slice(0, i).join('/');
      if (names.has(prefix)) throw bundleError(`${prefix} is both a file and the folder of ${p}`);
    }
  }
  if (!names.has('cluster.yaml')) throw bundleError('the bundle has no cluster.yaml');
  return { files, reload: v.reload };
}
