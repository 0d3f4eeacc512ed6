// Who may change or read what croft trusts, checked like OpenSSH checks a private key: croft runs as
// root, so a config file, module file or script that another user can write is a way to run code as
// root, and a key that another user can read lets them sign heartbeats and replication sessions.
// Pure: the modes and owners come from FileAccess (load.ts reads them with lstat/stat).
//
// Refused (each with the file named and the exact command that fixes it):
// - cluster.yaml, module files, scripts writable by group or others;
// - any folder on the way to them or to the key file, up to /, writable by group or others (they
//   could rename it and put their own files in its place); a folder with the sticky bit, like /tmp,
//   is fine: others cannot rename or replace what is not theirs in it;
// - those files not owned by root or by the daemon's own user;
// - the key file, and a cluster.yaml that holds `key:` inline, readable or writable by group or others.
import path from 'node:path';
import type { FileAccess, FileStatus } from './files.js';

const S_ISVTX = 0o1000;

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function who(bits: number, g: number, o: number): string {
  const parts: string[] = [];
  if (bits & g) parts.push('its group');
  if (bits & o) parts.push('other users');
  return parts.join(' and ');
}

export function ownerProblem(file: string, st: FileStatus, files: FileAccess): string | null {
  if (st.uid === undefined || st.uid === 0 || st.uid === files.daemonUid) return null;
  const owner = files.daemonUid !== undefined && files.daemonUid !== 0 ? String(files.daemonUid) : 'root';
  return `${file} is owned by uid ${st.uid}, not by root or croft's user: that user can change what croft runs as root; run: chown ${owner} ${file}`;
}

/** Problems of a file croft trusts (config file or script): writable by others, foreign owner, and the same for its folder. */
export function trustedFileProblems(file: string, files: FileAccess, what: string): string[] {
  const out: string[] = [];
  const st = files.stat(file);
  if (!st || st.mode === undefined) return out;
  if (st.mode & 0o022) {
    out.push(`${what} ${file} is writable by ${who(st.mode, 0o020, 0o002)} (mode ${octal(st.mode)}): they could change what croft runs as root; run: chmod go-w ${file}`);
  }
  const owner = ownerProblem(file, st, files);
  if (owner) out.push(owner);
  return out;
}

/**
 * The folders on the way to `files` (each ancestor up to /, each once) that group or others can
 * write, without the sticky bit: [folder, message].
 */
export function folderProblems(paths: readonly string[], files: FileAccess): [string, string][] {
  const seen = new Set<string>();
  const out: [string, string][] = [];
  for (const p of paths) {
    let dir = path.dirname(path.resolve(p));
    for (;;) {
      if (seen.has(dir)) break;
      seen.add(dir);
      const d = files.stat(dir);
      if (d && d.mode !== undefined && d.mode & 0o022 && !(d.mode & S_ISVTX)) {
        out.push([dir, `the folder ${dir} is writable by ${who(d.mode, 0o020, 0o002)} (mode ${octal(d.mode)}) and holds (on the way to) ${path.resolve(p)}, which croft trusts: they could replace it; run: chmod go-w ${dir}`]);
      }
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  return out;
}

/** Problems of a file holding the cluster key: any access by group or others (as OpenSSH refuses a private key). */
export function secretFileProblems(file: string, files: FileAccess, what: string, fix = `chmod 600 ${file}`): string[] {
  const st = files.stat(file);
  if (!st || st.mode === undefined || (st.mode & 0o077) === 0) return [];
  const access = [(st.mode & 0o044) ? 'readable' : '', (st.mode & 0o022) ? 'writable' : ''].filter(Boolean).join(' and ');
  return [`${what} ${file} is ${access} by ${who(st.mode, 0o070, 0o007)} (mode ${octal(st.mode)}); the cluster key must be private to croft, as OpenSSH requires of a private key; run: ${fix}`];
}
