// `croft module add <kind|shipped-module> <name>`: copies a shipped module (modules/<x> of the package:
// /usr/lib/croft/modules -> /usr/share/croft/modules once installed) or a bare template of a kind
// (farm, mirror: the generic modules; light: two empty scripts) into <dir>/modules/<name>/, with the
// modes croft accepts (folders 0755, scripts 0755, other files 0644), applies --set key=value to its
// module.yaml (comments kept), and checks the whole configuration as `croft check` does. A module
// that would be refused is removed again, and its problems shown.
import fs from 'node:fs';
import path from 'node:path';
import { parseDocument, parse as parseYaml, isMap, isSeq } from 'yaml';
import { checkConfigDir } from '../../src/config/load.js';
import { formatProblems } from '../../src/config/problems.js';
import { CroftError } from '../../src/errors.js';
import { repoRoot } from '../../src/paths.js';
import { flagString, parseArgs, type Output } from './args.js';
import { takeRepeated } from './init.js';

export const moduleAddUsage = `usage: croft module add <kind|shipped-module> <name> [--dir DIR] [--set key=value ...] [--force]

  <kind>            farm, mirror (the generic modules) or light (two empty scripts to fill in)
  <shipped-module>  one of ${'${shipped}'}
  <name>            the module's name in the cluster (lowercase letters, digits, '-')
  --dir DIR         the configuration folder (default /etc/croft; cluster.yaml must be there)
  --set KEY=VALUE   sets a key of module.yaml (dotted for nested keys: witness.type=ping,
                    checkers.0.url=http://127.0.0.1:81/); the value is YAML: 80, [n1, n2], none
  --force           replace an existing module of that name`;

const KINDS: Record<string, string | null> = { farm: 'generic-farm', mirror: 'generic-mirror', light: null };
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The folder of the shipped modules: the package's modules/ (a link to /usr/share/croft/modules once installed). */
export function shippedModulesDir(): string {
  return path.join(repoRoot, 'modules');
}

export function shippedModules(): string[] {
  try {
    return fs.readdirSync(shippedModulesDir())
      .filter((d) => fs.existsSync(path.join(shippedModulesDir(), d, 'module.yaml')))
      .sort();
  } catch {
    return [];
  }
}

function usage(): string {
  return moduleAddUsage.replace('${shipped}', shippedModules().join(', ') || '(none found)');
}

const LIGHT_YAML = `# A light module: the application runs on every node of \`nodes\`, started by start_both and stopped
# by stop_both (both idempotent, run as root with CROFT_NODE, CROFT_MODULE...). Fill in the scripts,
# add checkers (see /usr/share/doc/croft/examples/modules/web.yaml), then croft check.
kind: light
# nodes: [n1, n2]              # the nodes that run it (default: every node of cluster.yaml)
scripts:
  start_both: ./start_both     # starts the application, returns once it works (idempotent)
  stop_both: ./stop_both       # stops it (idempotent)
  timeout_ms: 30000            # a script still running after this is killed (and counts as failed)
restart:
  maxloop: 3                   # at most 3 restarts after checker failures...
  window_ms: 600000            # ...within 10 minutes, then the module stops on that node
checkers: []
`;

const LIGHT_SCRIPT = (what: string) => `#!/bin/sh
# ${what} the application of module $CROFT_MODULE on node $CROFT_NODE (idempotent). Exit 0 on success.
set -eu
exit 0
`;

/** A --set path: dotted keys, numbers index lists. */
function setPath(key: string): (string | number)[] {
  return key.split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

/** Copies a module folder: symlinks followed (nginx-farm-cloud links nginx-farm's scripts), modes made croft's. */
function copyModule(from: string, to: string): void {
  fs.mkdirSync(to, { mode: 0o755 });
  fs.chmodSync(to, 0o755);
  for (const entry of fs.readdirSync(from)) {
    const src = path.join(from, entry);
    const dst = path.join(to, entry);
    const st = fs.statSync(src);
    if (st.isDirectory()) copyModule(src, dst);
    else if (st.isFile()) {
      const mode = st.mode & 0o111 ? 0o755 : 0o644;
      fs.copyFileSync(src, dst, fs.constants.COPYFILE_EXCL);
      fs.chmodSync(dst, mode);
    }
  }
}

export async function moduleAddCommand(argv: string[], out: Output): Promise<number> {
  let from: string | null;
  let source: string;
  let name: string;
  let dir: string;
  let sets: [string, string][];
  let force: boolean;
  try {
    const setArgs = takeRepeated(argv, 'set');
    const args = parseArgs(setArgs.rest, ['dir']);
    for (const k of args.flags.keys()) if (k !== 'dir' && k !== 'force') throw new CroftError('CROFT_ERR_USAGE', `unknown option --${k}`);
    if (typeof args.flags.get('force') === 'string') throw new CroftError('CROFT_ERR_USAGE', '--force takes no value');
    const pos = [...args.positionals, ...args.rest];
    if (pos.length !== 2) throw new CroftError('CROFT_ERR_USAGE', pos.length < 2 ? 'expected <kind|shipped-module> <name>' : `unexpected argument "${pos[2]}"`);
    [source, name] = pos as [string, string];
    if (!NAME.test(name)) throw new CroftError('CROFT_ERR_USAGE', `module name ${JSON.stringify(name)}: expected lowercase letters, digits and '-' (at most 63)`);
    if (source in KINDS) {
      const generic = KINDS[source];
      from = generic === null ? null : path.join(shippedModulesDir(), generic!);
    } else if (NAME.test(source) && shippedModules().includes(source)) {
      from = path.join(shippedModulesDir(), source);
    } else {
      throw new CroftError('CROFT_ERR_USAGE', `unknown module ${JSON.stringify(source)}: expected a kind (farm, mirror, light) or a shipped module (${shippedModules().join(', ')})`);
    }
    sets = setArgs.values.map((s) => {
      const eq = s.indexOf('=');
      if (eq <= 0) throw new CroftError('CROFT_ERR_USAGE', `--set ${s}: expected key=value (e.g. vip=10.0.0.100)`);
      const key = s.slice(0, eq);
      if (!/^[a-z0-9_]+(\.[a-z0-9_]+)*$/.test(key)) throw new CroftError('CROFT_ERR_USAGE', `--set ${s}: ${JSON.stringify(key)} is not a key of module.yaml (lowercase, dotted for nested keys)`);
      return [key, s.slice(eq + 1)];
    });
    dir = path.resolve(flagString(args, 'dir') ?? '/etc/croft');
    force = args.flags.has('force');
  } catch (err) {
    if (err instanceof CroftError && err.code === 'CROFT_ERR_USAGE') {
      out.error(`croft module add: ${err.message}\n${usage()}`);
      return 2;
    }
    throw err;
  }

  if (!fs.existsSync(path.join(dir, 'cluster.yaml'))) {
    out.error(`croft module add: ${dir}/cluster.yaml does not exist: create the configuration first (croft init --dir ${dir} ...)`);
    return 1;
  }
  const modulesDir = path.join(dir, 'modules');
  const target = path.join(modulesDir, name);
  const flat = path.join(modulesDir, `${name}.yaml`);
  for (const p of [target, flat]) {
    if (fs.existsSync(p) && !force) {
      out.error(`croft module add: module ${name} already exists (${p}): not overwritten (--force replaces it)`);
      return 1;
    }
  }
  fs.mkdirSync(modulesDir, { recursive: true, mode: 0o755 });
  // Built beside its final place, then renamed: a refused module never replaces anything.
  const staging = path.join(modulesDir, `.${name}.new-${process.pid}`);
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    if (from) {
      copyModule(from, staging);
    } else {
      fs.mkdirSync(staging, { mode: 0o755 });
      fs.chmodSync(staging, 0o755);
      fs.writeFileSync(path.join(staging, 'module.yaml'), LIGHT_YAML, { mode: 0o644 });
      fs.writeFileSync(path.join(staging, 'start_both'), LIGHT_SCRIPT('Starts'), { mode: 0o755 });
      fs.writeFileSync(path.join(staging, 'stop_both'), LIGHT_SCRIPT('Stops'), { mode: 0o755 });
      for (const f of ['start_both', 'stop_both']) fs.chmodSync(path.join(staging, f), 0o755);
    }
    const yamlFile = path.join(staging, 'module.yaml');
    const doc = parseDocument(fs.readFileSync(yamlFile, 'utf8'));
    for (const [key, text] of sets) {
      let value: unknown;
      try {
        value = parseYaml(text);
      } catch (err) {
        out.error(`croft module add: --set ${key}=${text}: not a YAML value: ${(err as Error).message.split('\n')[0]}`);
        return 2;
      }
      const p = setPath(key);
      // A list index must name an existing item, and a nested key a mapping: no silent new structure.
      for (let k = 0; k < p.length; k++) {
        const seg = p[k]!;
        const parent = k === 0 ? doc.contents : doc.getIn(p.slice(0, k), true);
        const where = p.slice(0, k).join('.') || 'module.yaml';
        const bad = typeof seg === 'number'
          ? !isSeq(parent) || seg >= parent.items.length
          : parent !== undefined && parent !== null && !isMap(parent);
        if (bad) {
          out.error(`croft module add: --set ${key}: ${where} has no ${typeof seg === 'number' ? `item ${seg}` : 'keys'}`);
          return 2;
        }
      }
      doc.setIn(p, value);
    }
    if (sets.length > 0) fs.writeFileSync(yamlFile, doc.toString(), { mode: 0o644 });

    if (force) {
      fs.rmSync(target, { recursive: true, force: true });
      fs.rmSync(flat, { force: true });
    }
    fs.renameSync(staging, target);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }

  const result = checkConfigDir(dir);
  if (!result.config) {
    const mine = result.problems.filter((p) => p.file.startsWith(`${target}${path.sep}`) || p.file === target);
    if (mine.length > 0) {
      fs.rmSync(target, { recursive: true, force: true });
      const n = mine.length;
      out.error(`${formatProblems(mine)}\ncroft module add: module ${name} would be refused (${n} problem${n === 1 ? '' : 's'}; fix them with --set key=value): not added`);
      return 1;
    }
    const n = result.problems.length;
    out.error(`croft module add: added ${target}, but ${dir} has other problems:\n${formatProblems(result.problems)}\n${dir}: ${n} problem${n === 1 ? '' : 's'}`);
    return 1;
  }
  const m = result.config.modules.find((x) => x.name === name)!;
  out.log(`croft module add: ${target}: ${m.kind} module ${name} on ${m.nodes.join(', ')}, from ${from ? path.basename(from) : 'the light template'}${sets.length ? `, ${sets.map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`);
  out.log(`${dir}: configuration OK. Copy ${target} to the same place on every node (scp -rp), and review its module.yaml and scripts.`);
  return 0;
}
