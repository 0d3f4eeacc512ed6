// Directories the lab's config names that a node writes: each node gets its own copy of them, as
// two machines would. Outside mounts.ts's fixed list every path is the host's, so without this a
// mirror module whose dirs are /srv/app would silently be one folder for both nodes.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

/** Top-level system folders a lab never binds over (a config naming one is left as it is). */
const SYSTEM = new Set(['/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib64', '/media', '/mnt', '/opt', '/proc',
  '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/var', '/var/lib', '/var/log', '/var/run', '/var/tmp']);

/** A config key that names a directory a node writes: dirs (mirror), state_dir and *_dir / *_dirs. */
function isDirKey(key: string): boolean {
  return key === 'dirs' || key === 'dir' || /_dirs?$/.test(key);
}

/** Absolute directory paths under directory-like keys of a parsed YAML document, and socket folders. */
function collect(value: unknown, key: string, out: string[]): void {
  if (Array.isArray(value)) {
    for (const v of value) collect(v, key, out);
  } else if (value !== null && typeof value === 'object') {
    // A mirror dirs item may be { path, exclude }: its path is a directory of `dirs`.
    for (const [k, v] of Object.entries(value)) collect(v, k === 'path' && isDirKey(key) ? key : k, out);
  } else if (typeof value === 'string' && value.startsWith('/')) {
    if (isDirKey(key)) out.push(path.normalize(value));
    else if (key === 'socket') out.push(path.dirname(path.normalize(value)));
  }
}

function yamlFiles(configDir: string): string[] {
  const files = [path.join(configDir, 'cluster.yaml')];
  const modules = path.join(configDir, 'modules');
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(modules, { withFileTypes: true });
  } catch { /* no modules */ }
  for (const e of entries) {
    if (e.isDirectory()) files.push(path.join(modules, e.name, 'module.yaml'));
    else if (/\.ya?ml$/.test(e.name)) files.push(path.join(modules, e.name));
  }
  return files.filter((f) => fs.existsSync(f));
}

const inside = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

/**
 * The directories of the config (cluster.yaml and every module file) that need a private copy per
 * node: not already private (`covered`, the fixed list), not the config itself, not a system
 * folder, outermost only (a path inside another is in that one's copy). A file that does not parse
 * is skipped here: the daemon reports it.
 */
export function configPrivatePaths(configDir: string, covered: readonly string[]): { paths: string[]; skipped: string[] } {
  const found: string[] = [];
  for (const file of yamlFiles(configDir)) {
    try {
      collect(parse(fs.readFileSync(file, 'utf8')), '', found);
    } catch { /* invalid YAML: croft check / the daemon say so */ }
  }
  const skipped = [...new Set(found.filter((p) => SYSTEM.has(p)))].sort();
  const wanted = [...new Set(found)].filter((p) => !SYSTEM.has(p) && !covered.some((c) => inside(p, c))).sort();
  return { paths: wanted.filter((p) => !wanted.some((o) => o !== p && inside(p, o))), skipped };
}
