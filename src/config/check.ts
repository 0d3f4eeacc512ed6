// The whole configuration check as a pure function of the files' texts and a file-system view:
// parse (with positions), validate each file against its schema, run the cross-file checks, and
// convert to typed config only when nothing is wrong. Every problem is collected.
import type { FileAccess } from './files.js';
import { toClusterConfig, toModuleConfigs } from './convert.js';
import type { ConfigProblem } from './problems.js';
import { sortProblems } from './problems.js';
import { checkCluster, checkModules } from './semantics.js';
import { checkNotify, notifyProgram } from './notify.js';
import path from 'node:path';
import { folderProblems, secretFileProblems, trustedFileProblems } from './perms.js';
import { obj as raw, type Obj } from './raw.js';
import { parseSource } from './source.js';
import type { Config } from './types.js';
import { validateCluster, validateModule } from './validate.js';

export interface SourceText {
  file: string;
  text: string;
}

export interface CheckResult {
  /** Present only when there is no problem. */
  config?: Config;
  problems: ConfigProblem[];
}

/**
 * @param dir absolute config directory (relative paths in cluster.yaml resolve against it)
 * @param modules module files in a stable order (load.ts sorts them by name)
 * @param extraProblems problems found while reading the files (unreadable file...), merged in
 */
/** The scripts a module file names (module scripts and script checkers), resolved against its folder. */
function scriptPaths(source: { file: string; data: unknown }): string[] {
  const obj = (v: unknown): Obj => raw(v) ?? {};
  const data = obj(source.data);
  const dir = path.dirname(source.file);
  const out: string[] = [];
  for (const v of Object.values(obj(data.scripts))) if (typeof v === 'string' && v !== '') out.push(path.resolve(dir, v));
  for (const c of Array.isArray(data.checkers) ? data.checkers : []) {
    const o = obj(c);
    if (o.type === 'script' && typeof o.path === 'string' && o.path !== '') out.push(path.resolve(dir, o.path));
  }
  return out;
}

export function checkSources(
  dir: string,
  cluster: SourceText,
  modules: readonly SourceText[],
  files: FileAccess,
  extraProblems: readonly ConfigProblem[] = [],
): CheckResult {
  const problems: ConfigProblem[] = [...extraProblems];
  const clusterSource = parseSource(cluster.file, cluster.text);
  const moduleSources = modules.map((m) => parseSource(m.file, m.text));

  problems.push(...clusterSource.syntaxProblems);
  if (clusterSource.syntaxProblems.length === 0) problems.push(...validateCluster(clusterSource));
  const { facts, problems: clusterProblems } = checkCluster(clusterSource, dir, files);
  problems.push(...clusterProblems);
  problems.push(...checkNotify(clusterSource, dir, files));

  for (const source of moduleSources) {
    problems.push(...source.syntaxProblems);
    if (source.syntaxProblems.length === 0) problems.push(...validateModule(source));
  }
  problems.push(...checkModules(moduleSources, facts, files));

  // Who may change the files (and read the inline key): see perms.ts.
  const whole = (file: string, message: string): ConfigProblem => ({ file, line: 1, column: 1, key: '', message });
  for (const m of trustedFileProblems(cluster.file, files, 'the config file')) problems.push(whole(cluster.file, m));
  // Secrets written in cluster.yaml itself (the key, API tokens, API passwords) make it a secret file.
  const clusterData = (clusterSource.data !== null && typeof clusterSource.data === 'object' ? clusterSource.data : {}) as Record<string, unknown>;
  const api = (clusterData.api !== null && typeof clusterData.api === 'object' ? clusterData.api : {}) as Record<string, unknown>;
  const held: { path: string[]; what: string }[] = [];
  if ('key' in clusterData) held.push({ path: ['key'], what: 'the cluster key' });
  if (Array.isArray(api.tokens) && api.tokens.length > 0) held.push({ path: ['api', 'tokens'], what: 'API tokens' });
  if (Array.isArray(api.users) && api.users.length > 0) held.push({ path: ['api', 'users'], what: 'API passwords' });
  if (held.length > 0) {
    const fix = `chmod 600 ${cluster.file}${'key' in clusterData ? ' (or move the key to a key_file with mode 600)' : ''}`;
    for (const m of secretFileProblems(cluster.file, files, `the config file holding ${held.map((h) => h.what).join(', ')} inline`, fix)) {
      problems.push(clusterSource.problem(held[0]?.path ?? [], m, 'key'));
    }
  }
  for (const source of moduleSources) {
    for (const m of trustedFileProblems(source.file, files, 'the module file')) problems.push(whole(source.file, m));
  }
  // Every folder on the way to a trusted file, each reported once (at the folder itself).
  const trusted = [cluster.file, ...moduleSources.map((m) => m.file), ...moduleSources.flatMap(scriptPaths)];
  if (typeof clusterData.key_file === 'string' && clusterData.key_file !== '') trusted.push(path.resolve(dir, clusterData.key_file));
  const hook = notifyProgram(clusterData, dir);
  if (hook !== undefined) trusted.push(hook);
  for (const [folder, m] of folderProblems(trusted, files)) problems.push(whole(folder, m));

  const order = [cluster.file, ...modules.map((m) => m.file)];
  if (problems.length > 0 || facts.key === undefined) {
    return { problems: sortProblems(problems, order) };
  }
  const clusterConfig = toClusterConfig(clusterSource, dir, facts.key);
  return { config: { dir, cluster: clusterConfig, modules: toModuleConfigs(moduleSources, clusterConfig) }, problems: [] };
}
