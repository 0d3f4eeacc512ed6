// Finds and loads the Rust addon (crates/croft-napi, built into <repo>/native by `npm run build:native`).
// Loading is lazy, so that code importing src/native only needs the addon when it really calls it.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../paths.js';
import { CroftError } from '../errors.js';

/** The raw exports of the addon, exactly as crates/croft-napi declares them. */
export interface NativeBinding {
  jhash(data: Buffer, seed: number): number;
  nftBucket(ip: string, port: number | null, modulus: number, seed: number): number;
  arpSendGratuitous(ifname: string, ip: string, mac: string, count: number, intervalMs?: number | null): Promise<void>;
  ArpResponder: new (ifname: string) => NativeArpResponder;
  exchangePaths(a: string, b: string): void;
  writeFileDurable(path: string, data: Buffer, mode: number, dirMode?: number | null): Promise<void>;
  writeFileDurableSync(path: string, data: Buffer, mode: number, dirMode?: number | null): void;
  NftSession: new () => NativeNftSession;
  /** The deliberately broken features of a test build (crates/croft-napi: chaos-*); [] in a release. */
  chaosFeatures(): string[];
}

export interface NativeNftSession {
  run(commands: string, json?: boolean | null): Promise<{ code: number; output: string; error: string }>;
  close(): void;
}

export interface NativeArpResponder {
  setAddresses(addresses: Array<{ ip: string; mac: string }>): void;
  stats(): { requests: number; replies: number; malformed: number; sendErrors: number; failure?: string | null };
  close(): void;
}

/** <repoRoot>/native, where the build puts the addon. */
export const nativeDir = path.join(repoRoot, 'native');

/**
 * Path of the addon for this platform, or null when none is built. The file is named by
 * `napi build --platform`: `croft.<platform>-<arch>[-<abi>].node` once package.json has
 * `"napi": {"binaryName": "croft"}`, `index.<...>.node` before (napi-rs' default name).
 */
export function nativeAddonPath(): string | null {
  // A lab may run its daemons on another build of the addon (the deliberately broken one of
  // test/integration/lab-chaos.lab.test.ts): honoured only inside a lab, whose environment sets
  // CROFT_LAB (top/lab/enter.ts); a daemon started by systemd never has it.
  const override = process.env.CROFT_LAB_NATIVE_ADDON;
  if (override && process.env.CROFT_LAB) return override;
  let names: string[];
  try {
    names = fs.readdirSync(nativeDir);
  } catch {
    return null;
  }
  const platformArch = `${process.platform}-${process.arch}`;
  // The newest build wins, so that an addon left over under the other name never shadows a rebuild.
  const candidates = names
    .filter((n) => /^(croft|index)\..+\.node$/.test(n))
    .map((n) => ({
      file: path.join(nativeDir, n),
      platformMatch: n.includes(`.${platformArch}`),
      mtimeMs: fs.statSync(path.join(nativeDir, n)).mtimeMs,
    }))
    .sort((a, b) => Number(b.platformMatch) - Number(a.platformMatch) || b.mtimeMs - a.mtimeMs)
    .map((c) => c.file);
  const best = candidates[0];
  return best ?? null;
}

let cached: NativeBinding | undefined;

/** The addon's exports; throws CROFT_ERR_NATIVE with what to do when it is missing or broken. */
export function loadNative(): NativeBinding {
  if (cached !== undefined) return cached;
  const file = nativeAddonPath();
  if (file === null) {
    throw new CroftError(
      'CROFT_ERR_NATIVE',
      `The croft native addon is not built (no ${path.join(nativeDir, 'croft.*.node')}): run \`make build\``,
    );
  }
  try {
    const require = createRequire(import.meta.url);
    cached = require(file) as NativeBinding;
    const broken = cached.chaosFeatures?.() ?? [];
    if (broken.length > 0) process.emitWarning(`the croft native addon ${file} is a deliberately broken test build (${broken.join(', ')}): never run it in production`);
  } catch (err) {
    throw new CroftError(
      'CROFT_ERR_NATIVE',
      `The croft native addon ${file} cannot be loaded (${(err as Error).message}): run \`make build\` to rebuild it`,
      { cause: err },
    );
  }
  return cached;
}

/** Runs a call into the addon, turning its errors (bad argument, no permission...) into CroftError. */
export function callNative<T>(what: string, call: (binding: NativeBinding) => T): T {
  const binding = loadNative();
  try {
    return call(binding);
  } catch (err) {
    throw nativeError(what, err);
  }
}

/** Swaps two paths atomically (renameat2 RENAME_EXCHANGE; both on one filesystem). */
export function exchangePaths(a: string, b: string): void {
  callNative(`exchanging ${a} and ${b}`, (n) => n.exchangePaths(a, b));
}

/**
 * Replaces `file` with `data` atomically and durably (`<file>.tmp` with `mode`, fsync, rename,
 * fsync of the folder, created 0700 if missing) in one task off the JS thread: one wake-up of it,
 * where the same steps through fs.promises are nine.
 */
export async function writeFileDurable(file: string, data: string | Buffer, mode: number, dirMode = 0o700): Promise<void> {
  const binding = loadNative();
  try {
    await binding.writeFileDurable(file, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, mode, dirMode);
  } catch (err) {
    throw nativeError(`writing ${file}`, err);
  }
}

/** The same on this thread, for a save that must be done before going on; throws CROFT_ERR_NATIVE. */
export function writeFileDurableSync(file: string, data: string | Buffer, mode: number, dirMode = 0o700): void {
  const binding = loadNative();
  try {
    binding.writeFileDurableSync(file, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, mode, dirMode);
  } catch (err) {
    throw nativeError(`writing ${file}`, err);
  }
}

export function nativeError(what: string, err: unknown): CroftError {
  if (err instanceof CroftError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CroftError('CROFT_ERR_NATIVE', `${what}: ${message}`, { cause: err });
}
