// The receiving side of `croft config push` (POST /api/v1/config/push, top/api/app.ts): a sealed
// bundle (src/config/bundle.ts) becomes this node's config folder, whole or not at all.
//
//  1. open the seal with the cluster key (else refused: CROFT_ERR_PUSH_AUTH), check the header:
//     for this node, from another node of cluster.yaml, within PUSH_WINDOW_MS of this clock, and
//     newer than the last bundle accepted (kept in the state dir, so a restart does not forget it):
//     a replayed or older bundle is refused (CROFT_ERR_PUSH_REPLAY). Each refusal is counted by reason.
//  2. write the files into a new folder beside the config folder (same filesystem), each with its
//     mode, fsync'd; check it with the same checks as `croft check` (src/config/load.ts): problems
//     are answered with file:line (named as they will be in the config folder), the new folder is
//     removed, nothing changed. The pushed cluster.yaml must still name this node.
//  3. swap the two folders in one renameat2(RENAME_EXCHANGE): there is no moment where the config
//     folder is missing or half written. The previous folder is kept beside it as
//     .<name>.previous (one level of undo, by hand).
//  4. with `reload`, reload (Daemon.reloadFromDisk): a changed cluster.yaml still needs a restart.
// Pushes are applied one at a time.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openBundle, type BundleFile } from '../../src/config/bundle.js';
import { checkConfigDir } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/config/problems.js';
import { CroftError, type ErrorCode } from '../../src/errors.js';
import { exchangePaths } from '../../src/native/load.js';
import type { Daemon, ReloadResult } from './daemon.js';

/** A bundle's time may differ from this node's clock by this much (clock skew plus transit). */
export const PUSH_WINDOW_MS = 5 * 60 * 1000;

export type PushRefusal = 'auth' | 'replay' | 'bundle' | 'config' | 'failed';
export const PUSH_REFUSALS: readonly PushRefusal[] = ['auth', 'replay', 'bundle', 'config', 'failed'];

export interface PushResult {
  node: string;
  from: string;
  files: number;
  bytes: number;
  /** Where the previous folder was kept. */
  previous: string;
  /** With reload: what it did, or why it could not (the files are in place either way). */
  reload?: ReloadResult | { error: string; message: string };
}

function refusalOf(code: ErrorCode): PushRefusal {
  switch (code) {
    case 'CROFT_ERR_PUSH_AUTH': return 'auth';
    case 'CROFT_ERR_PUSH_REPLAY': return 'replay';
    case 'CROFT_ERR_PUSH_BUNDLE': return 'bundle';
    case 'CROFT_ERR_CONFIG': return 'config';
    default: return 'failed';
  }
}

export class PushReceiver {
  readonly refused: Record<PushRefusal, number> = { auth: 0, replay: 0, bundle: 0, config: 0, failed: 0 };
  accepted = 0;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(private readonly daemon: Daemon, private readonly now: () => number = Date.now) {}

  private stateFile(): string {
    return path.join(this.daemon.config.cluster.stateDir, 'config-push.json');
  }

  private lastAt(): number {
    try {
      const v = (JSON.parse(fs.readFileSync(this.stateFile(), 'utf8')) as { lastAt?: unknown }).lastAt;
      return Number.isSafeInteger(v) ? (v as number) : 0;
    } catch {
      return 0;
    }
  }

  private saveLastAt(at: number): void {
    const file = this.stateFile();
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ lastAt: at }), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  /** Applies a pushed bundle (see the header comment); throws CroftError, counted, when refused. */
  receive(body: Buffer, source: string | undefined): Promise<PushResult> {
    const run = this.pending.then(() => this.apply(body)).catch((err: unknown) => {
      const code = err instanceof CroftError ? err.code : 'CROFT_ERR_API';
      const reason = refusalOf(code);
      this.refused[reason] += 1;
      this.daemon.logger.warn({ event: 'config_push_refused', reason, source, err: err instanceof Error ? err.message : String(err) },
        `config push from ${source ?? '?'} refused (${reason}): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      throw err;
    });
    this.pending = run.catch(() => undefined);
    return run;
  }

  private async apply(body: Buffer): Promise<PushResult> {
    const d = this.daemon;
    const cluster = d.config.cluster;
    const { header, payload } = openBundle(cluster.key, body);
    if (header.to !== d.self) {
      throw new CroftError('CROFT_ERR_PUSH_REPLAY', `the bundle was sealed for node ${header.to}, this is ${d.self}: refused (a bundle is for one node)`);
    }
    if (header.from === d.self || !cluster.nodes.some((n) => n.name === header.from)) {
      throw new CroftError('CROFT_ERR_PUSH_REPLAY', `the bundle says it comes from ${header.from}, not another node of ${cluster.file}`);
    }
    const now = this.now();
    if (Math.abs(now - header.at) > PUSH_WINDOW_MS) {
      throw new CroftError('CROFT_ERR_PUSH_REPLAY', `the bundle was made at ${new Date(header.at).toISOString()}, this node's clock says `
        + `${new Date(now).toISOString()}: more than ${PUSH_WINDOW_MS / 60000} minutes apart (a replay, or clocks to set right: use NTP)`);
    }
    const last = this.lastAt();
    if (header.at <= last) {
      throw new CroftError('CROFT_ERR_PUSH_REPLAY', `the bundle (made at ${new Date(header.at).toISOString()}) is not newer than the last `
        + `push accepted here (${new Date(last).toISOString()}): a replay, or pushed from a node whose clock is behind`);
    }
    const dir = d.config.dir;
    const parent = path.dirname(dir);
    const base = path.basename(dir);
    const fresh = path.join(parent, `.${base}.push-${randomBytes(6).toString('hex')}`);
    const previous = path.join(parent, `.${base}.previous`);
    let swapped = false;
    try {
      writeFolder(fresh, payload.files, fs.statSync(dir).mode & 0o755);
      const result = checkConfigDir(fresh);
      if (!result.config) throw new ConfigError(result.problems.map((p) => renamed(p, fresh, dir)));
      if (!result.config.cluster.nodes.some((n) => n.name === d.self)) {
        throw new ConfigError([{ file: path.join(dir, 'cluster.yaml'), line: 1, column: 1, key: 'nodes',
          message: `the pushed cluster.yaml does not name this node (${d.self}): it would not start with it` }]);
      }
      exchangePaths(fresh, dir);
      swapped = true;
      fsyncDir(parent);
      // `fresh` now holds the previous folder: kept as the one-level undo.
      fs.rmSync(previous, { recursive: true, force: true });
      fs.renameSync(fresh, previous);
    } finally {
      if (!swapped) fs.rmSync(fresh, { recursive: true, force: true });
    }
    this.saveLastAt(header.at);
    this.accepted += 1;
    const bytes = payload.files.reduce((n, f) => n + f.data.length, 0);
    d.logger.info({ event: 'config_push', from: header.from, files: payload.files.length, bytes, previous },
      `config pushed from ${header.from}: ${payload.files.length} files in ${dir} (the previous folder is ${previous})`);
    const out: PushResult = { node: d.self, from: header.from, files: payload.files.length, bytes, previous };
    if (payload.reload) {
      try {
        out.reload = await d.reloadFromDisk(`config push from ${header.from}`);
      } catch (err) {
        out.reload = { error: err instanceof CroftError ? err.code : 'CROFT_ERR_API', message: err instanceof Error ? err.message : String(err) };
      }
    }
    return out;
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A problem found in the new folder, named as the file will be in the config folder. */
function renamed(p: ConfigProblem, from: string, to: string): ConfigProblem {
  const file = p.file === from || p.file.startsWith(from + path.sep) ? to + p.file.slice(from.length) : p.file;
  return { ...p, file, message: p.message.split(from).join(to) };
}

/** Creates `dir` (0700 while written, then `mode`) with the files, each fsync'd, then the folders. */
function writeFolder(dir: string, files: readonly BundleFile[], mode: number): void {
  fs.mkdirSync(dir, { mode: 0o700 });
  const folders = new Set<string>([dir]);
  for (const f of files) {
    const target = path.join(dir, ...f.path.split('/'));
    // badPath (bundle.ts) allows no "..", no absolute path, no hidden name: still, check the result.
    if (!target.startsWith(dir + path.sep)) throw new CroftError('CROFT_ERR_PUSH_BUNDLE', `${f.path}: outside the folder`);
    const folder = path.dirname(target);
    if (!folders.has(folder)) {
      fs.mkdirSync(folder, { recursive: true, mode: 0o755 });
      folders.add(folder);
    }
    // O_EXCL and O_NOFOLLOW: the folder is new and ours; nothing may be there already.
    const fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeFileSync(fd, f.data);
      fs.fchmodSync(fd, f.mode);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  for (const folder of [...folders].sort((a, b) => b.length - a.length)) {
    if (folder !== dir) fs.chmodSync(folder, 0o755);
    fsyncDir(folder);
  }
  fs.chmodSync(dir, mode);
}
