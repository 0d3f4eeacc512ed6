// Checks that JSON Schema cannot express: across keys (timeout vs interval, one address per LAN,
// key xor key_file), across files (module nodes exist in cluster.yaml, module checkers name real
// modules, no dependency cycle) and against the file system (scripts exist and are executable).
// They read the raw data defensively, so they also run on files that failed the schema, and every
// problem is reported in one pass.
import path from 'node:path';
import { defaults } from './defaults.js';
import { checkFarm } from './farm.js';
import { checkMirror } from './mirror.js';
import type { FileAccess } from './files.js';
import { ownerProblem, secretFileProblems, trustedFileProblems } from './perms.js';
import type { ConfigProblem } from './problems.js';
import { nameSchema } from './schema-parts.js';
import { int, list, obj, str } from './raw.js';
import type { DataPath, Source } from './source.js';
import { keyString } from './source.js';
import { didYouMean } from './suggest.js';
import type { ModuleKind } from './types.js';

const namePattern = new RegExp(nameSchema('x').pattern as string);
/** Words a module checker's `node:` gives a meaning to, so no node may be called that. */
const reservedNodeNames = ['local', 'any'];

/** States each kind of module can be in (what a module checker may wait for). */
const statesOfKind: Record<ModuleKind, readonly string[]> = {
  light: ['STOP', 'WAIT', 'UP'],
  farm: ['STOP', 'WAIT', 'UP'],
  mirror: ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND'],
};

export interface ClusterFacts {
  /** Undefined when `nodes` is unusable: node references are then not checked. */
  nodeNames: string[] | undefined;
  /** The secret, when it could be read. */
  key: Buffer | undefined;
  /** Weight of each node (default applied), when `nodes` is usable. */
  nodeWeights?: Map<string, number>;
  /** Every node address (lowercase), with whose it is: "n1 on lan0". */
  addresses?: Map<string, string>;
  /** LAN names (default applied), when usable. */
  lans?: string[];
}

export function checkCluster(source: Source, dir: string, files: FileAccess): { facts: ClusterFacts; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const data = obj(source.data);
  if (!data) return { facts: { nodeNames: undefined, key: undefined }, problems };
  const report = (p: DataPath, message: string, anchor: 'key' | 'value' = 'value'): void => {
    problems.push(source.problem(p, message, anchor));
  };

  // key xor key_file
  let key: Buffer | undefined;
  const inlineKey = str(data.key);
  const keyFile = str(data.key_file);
  if ('key' in data && 'key_file' in data) {
    report(['key_file'], 'give either key or key_file, not both', 'key');
  } else if (!('key' in data) && !('key_file' in data)) {
    report(['key'], 'missing required key: expected key (a secret of at least 32 characters) or key_file (a file holding one)');
  } else if (inlineKey !== undefined) {
    key = Buffer.from(inlineKey, 'utf8');
  } else if (keyFile !== undefined && keyFile !== '') {
    const file = path.resolve(dir, keyFile);
    const got = files.read(file);
    if (!Buffer.isBuffer(got)) {
      report(['key_file'], `cannot read the key file ${file}: ${got.error}`);
    } else {
      const trimmed = Buffer.from(got.toString('utf8').trim(), 'utf8');
      const access = secretFileProblems(file, files, 'the key file');
      const st = files.stat(file);
      const owner = st ? ownerProblem(file, st, files) : null;
      for (const m of owner ? [...access, owner] : access) report(['key_file'], m);
      if (trimmed.length < 32) {
        report(['key_file'], `the key file ${file} holds ${trimmed.length} bytes; expected at least 32, as for key (without surrounding blanks; make one with: openssl rand -hex 32 > ${file})`);
      } else if (access.length === 0 && owner === null) {
        key = trimmed;
      }
    }
  }

  // Heartbeat timing: a peer must survive at least one lost heartbeat.
  const heartbeat = obj(data.heartbeat) ?? {};
  const intervalMs = int(heartbeat.interval_ms) ?? defaults.heartbeat.intervalMs;
  const timeoutMs = int(heartbeat.timeout_ms) ?? defaults.heartbeat.timeoutMs;
  if (timeoutMs < 2 * intervalMs) {
    const where = 'timeout_ms' in heartbeat ? 'timeout_ms' : 'interval_ms';
    report(
      ['heartbeat', where],
      `expected timeout_ms >= 2 × interval_ms (${2 * intervalMs} ms), got timeout_ms ${timeoutMs} ms with interval_ms ${intervalMs} ms: a single lost heartbeat would declare a peer down`,
    );
  }

  // Nodes: one address per LAN, no address twice, no reserved names.
  const lans = (list(data.lans) ?? [...defaults.lans]).filter((l): l is string => typeof l === 'string');
  const nodes = obj(data.nodes);
  const usedBy = new Map<string, string>();
  const addressOwners = new Map<string, string>();
  const nodeWeights = new Map<string, number>();
  for (const [name, raw] of Object.entries(nodes ?? {})) {
    const weight = obj(raw)?.weight;
    nodeWeights.set(name, typeof weight === 'number' ? weight : defaults.node.weight);
    if (reservedNodeNames.includes(name)) {
      report(['nodes', name], `"${name}" cannot be a node name: it has a meaning in module checkers (node: local|any)`, 'key');
    }
    const addresses = list(obj(raw)?.addresses);
    if (!addresses) continue;
    if (addresses.length !== lans.length && lans.length > 0) {
      report(
        ['nodes', name, 'addresses'],
        `expected ${lans.length} address${lans.length === 1 ? '' : 'es'} (one per LAN: ${lans.join(', ')}), got ${addresses.length}`,
      );
    }
    addresses.forEach((a, i) => {
      if (typeof a !== 'string') return;
      const id = a.toLowerCase();
      if (!addressOwners.has(id)) addressOwners.set(id, `${name} on ${lans[i] ?? `LAN ${i}`}`);
      const here: DataPath = ['nodes', name, 'addresses', i];
      const first = usedBy.get(id);
      if (first !== undefined) report(here, `address ${a} is already used by ${first}; expected each address once`);
      else usedBy.set(id, keyString(here));
    });
  }

  // TLS files must exist (the daemon would fail at start otherwise).
  const tls = obj(obj(data.api)?.tls);
  for (const k of ['cert', 'key']) {
    const p = str(tls?.[k]);
    if (p === undefined || p === '') continue;
    const file = path.resolve(dir, p);
    const st = files.stat(file);
    if (!st) report(['api', 'tls', k], `file not found: ${file}`);
    else if (!st.isFile) report(['api', 'tls', k], `not a regular file: ${file}`);
    else if (k === 'key') for (const m of secretFileProblems(file, files, 'the TLS private key')) report(['api', 'tls', k], m);
  }

  return {
    facts: { nodeNames: nodes ? Object.keys(nodes) : undefined, key, nodeWeights: nodes ? nodeWeights : undefined, addresses: addressOwners, lans },
    problems,
  };
}

/** The name of a module: its `name:` key, else its file name without .yaml (or its folder's name). */
export function moduleName(source: Source): string {
  const explicit = str(obj(source.data)?.name);
  if (explicit !== undefined) return explicit;
  // modules/<name>/module.yaml is named after its folder.
  const base = path.basename(source.file);
  return base === 'module.yaml' ? path.basename(path.dirname(source.file)) : base.replace(/\.ya?ml$/, '');
}

export function checkerName(checker: unknown, index: number): string {
  const c = obj(checker);
  return str(c?.name) ?? `${str(c?.type) ?? 'checker'}-${index}`;
}

function kindOf(source: Source): ModuleKind | undefined {
  const k = str(obj(source.data)?.kind);
  return k === 'light' || k === 'farm' || k === 'mirror' ? k : undefined;
}

export function checkModules(modules: readonly Source[], cluster: ClusterFacts, files: FileAccess): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const names = modules.map(moduleName);
  const kinds = new Map<string, ModuleKind | undefined>();
  const firstFile = new Map<string, string>();
  /** Dependency edges from module checkers, for the cycle check. */
  const deps = new Map<string, { to: string; source: Source; at: DataPath }[]>();

  modules.forEach((source, m) => {
    const data = obj(source.data);
    if (!data) return;
    const report = (p: DataPath, message: string, anchor: 'key' | 'value' = 'value'): void => {
      problems.push(source.problem(p, message, anchor));
    };
    const name = names[m] ?? '';
    const named = typeof data.name === 'string';
    if (!named && !namePattern.test(name)) {
      report(['name'], `the module name comes from the file name "${name}", which is not ${String(nameSchema('module name').expect)}: rename the file or add a name: key`);
    }
    const other = firstFile.get(name);
    if (other !== undefined) {
      report(named ? ['name'] : [], `the module name "${name}" is already used by ${other}; expected one file per module`);
    } else {
      firstFile.set(name, source.file);
      kinds.set(name, kindOf(source));
    }
  });

  modules.forEach((source, m) => {
    const data = obj(source.data);
    if (!data) return;
    const self = names[m] ?? '';
    const dir = path.dirname(source.file);
    const report = (p: DataPath, message: string, anchor: 'key' | 'value' = 'value'): void => {
      problems.push(source.problem(p, message, anchor));
    };
    const checkNode = (p: DataPath, node: string): void => {
      if (!cluster.nodeNames || cluster.nodeNames.includes(node)) return;
      const guess = didYouMean(node, cluster.nodeNames);
      report(p, `unknown node "${node}"; expected one of the nodes of cluster.yaml: ${cluster.nodeNames.join(', ')}${guess ? ` (did you mean "${guess}"?)` : ''}`);
    };
    const checkScript = (p: DataPath, rel: string): void => {
      const file = path.resolve(dir, rel);
      const st = files.stat(file);
      if (!st) report(p, `script not found: ${file}`);
      else if (!st.isFile) report(p, `not a regular file: ${file}`);
      else if (!st.executable) report(p, `script is not executable: ${file} (chmod +x it)`);
      else for (const m of trustedFileProblems(file, files, 'the script')) report(p, m);
    };

    (list(data.nodes) ?? []).forEach((n, i) => {
      if (typeof n === 'string') checkNode(['nodes', i], n);
    });

    const moduleNodes = list(data.nodes)?.filter((n): n is string => typeof n === 'string') ?? cluster.nodeNames;
    problems.push(...checkFarm(source, { moduleNodes, clusterWeights: cluster.nodeWeights, addresses: cluster.addresses ?? new Map() }));
    problems.push(...checkMirror(source, { moduleNodes, lans: cluster.lans, addresses: cluster.addresses ?? new Map() }));

    const scripts = obj(data.scripts);
    for (const k of ['start_both', 'stop_both', 'start_prim', 'stop_prim']) {
      const p = str(scripts?.[k]);
      if (p !== undefined && p !== '') checkScript(['scripts', k], p);
    }

    const checkerNames = new Map<string, number>();
    (list(data.checkers) ?? []).forEach((raw, i) => {
      const c = obj(raw);
      if (!c) return;
      const cname = checkerName(c, i);
      const first = checkerNames.get(cname);
      if (first !== undefined) {
        report(
          typeof c.name === 'string' ? ['checkers', i, 'name'] : ['checkers', i],
          `checker name "${cname}" is already used by checkers[${first}]; expected unique checker names within a module`,
        );
      } else {
        checkerNames.set(cname, i);
      }

      if (c.type === 'script') {
        const p = str(c.path);
        if (p !== undefined && p !== '') checkScript(['checkers', i, 'path'], p);
      }

      if (c.type === 'module') {
        const target = str(c.module);
        const node = str(c.node);
        if (node !== undefined && !reservedNodeNames.includes(node)) checkNode(['checkers', i, 'node'], node);
        if (target === undefined) return;
        if (target === self) {
          report(['checkers', i, 'module'], `a module cannot depend on itself ("${self}")`);
          return;
        }
        if (!kinds.has(target)) {
          const known = [...kinds.keys()].filter((k) => k !== self);
          const guess = didYouMean(target, known);
          report(
            ['checkers', i, 'module'],
            `unknown module "${target}"; expected one of the modules of this config directory: ${known.length > 0 ? known.join(', ') : '(none)'}${guess ? ` (did you mean "${guess}"?)` : ''}`,
          );
          return;
        }
        const edges = deps.get(self) ?? [];
        edges.push({ to: target, source, at: ['checkers', i, 'module'] });
        deps.set(self, edges);
        const targetKind = kinds.get(target);
        const states = list(c.states);
        if (targetKind && states) {
          states.forEach((s, j) => {
            if (typeof s === 'string' && !statesOfKind[targetKind].includes(s)) {
              report(
                ['checkers', i, 'states', j],
                `module "${target}" is a ${targetKind} module and is never ${s}; expected one of ${statesOfKind[targetKind].join(', ')}`,
              );
            }
          });
        }
      }
    });
  });

  problems.push(...dependencyCycles(deps));
  return problems;
}

/** Modules that wait for each other would wait forever: report each cycle once, at its smallest module. */
function dependencyCycles(deps: Map<string, { to: string; source: Source; at: DataPath }[]>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const start of [...deps.keys()].sort()) {
    // Depth-first search for a path back to `start` through modules greater than it only.
    const stack: { name: string; trail: string[] }[] = [{ name: start, trail: [start] }];
    const visited = new Set<string>();
    let found = false;
    while (stack.length > 0 && !found) {
      const { name, trail } = stack.pop() as { name: string; trail: string[] };
      for (const edge of deps.get(name) ?? []) {
        if (edge.to === start) {
          const first = deps.get(start)?.find((e) => e.to === (trail[1] ?? start));
          const at = first ?? edge;
          problems.push(
            at.source.problem(at.at, `dependency cycle: ${[...trail, start].join(' -> ')}; these modules would wait for each other forever`),
          );
          found = true;
          break;
        }
        if (edge.to > start && !visited.has(edge.to)) {
          visited.add(edge.to);
          stack.push({ name: edge.to, trail: [...trail, edge.to] });
        }
      }
    }
  }
  return problems;
}
