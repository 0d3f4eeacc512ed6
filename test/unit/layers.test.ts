// The layers of ../shared/DESIGN.md, checked on the source tree: imports run one way, top layer
// (top/: daemon, API, CLI, console, lab) → wings (farm/, mirror/) → core (src/); the wings do not
// import each other (a type both need lives in the core). And the Rust crates' modules form no
// import cycle (a module that uses another never is used back, directly or through others).
import { test } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/paths.js';

type Layer = 'core' | 'farm' | 'mirror' | 'top';
const FOLDERS: Record<string, Layer> = { src: 'core', farm: 'farm', mirror: 'mirror', top: 'top' };
/** What each layer may import (besides itself and packages). */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = { core: [], farm: ['core'], mirror: ['core'], top: ['core', 'farm', 'mirror'] };

function walk(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, ext));
    else if (e.name.endsWith(ext)) out.push(p);
  }
  return out;
}

function layerOf(file: string): Layer | null {
  const top = path.relative(repoRoot, file).split(path.sep)[0]!;
  return FOLDERS[top] ?? null;
}

/** Relative import specifiers of a TypeScript file (static and dynamic, types included). */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) found.push(m[1]!);
  return found;
}

/** Every import that runs against the layering, as "file -> target (from → to)". */
function violations(): string[] {
  const bad: string[] = [];
  for (const folder of Object.keys(FOLDERS)) {
    for (const file of walk(path.join(repoRoot, folder), '.ts')) {
      const from = layerOf(file)!;
      for (const spec of importsOf(fs.readFileSync(file, 'utf8'))) {
        const target = path.resolve(path.dirname(file), spec);
        const to = layerOf(target);
        if (to === null) {
          bad.push(`${path.relative(repoRoot, file)} -> ${spec} (outside the layers)`);
        } else if (to !== from && !MAY_IMPORT[from].includes(to)) {
          bad.push(`${path.relative(repoRoot, file)} -> ${spec} (${from} → ${to})`);
        }
      }
    }
  }
  return bad;
}

test('layers: imports run top → wings → core only; farm and mirror never import each other', () => {
  assert.deepEqual(violations(), []);
});

test('layers: the check sees an import that runs back up (planted in memory)', () => {
  assert.deepEqual(importsOf("import type { X } from '../../top/cli/main.js';\nconst y = await import('../farm/driver.js');"), ['../../top/cli/main.js', '../farm/driver.js']);
  const file = path.join(repoRoot, 'src', 'membership', 'core.ts');
  const to = layerOf(path.resolve(path.dirname(file), '../../top/cli/main.js'));
  assert.equal(to, 'top');
  assert.equal(MAY_IMPORT.core.includes(to), false);
});

/** The top-level modules of a crate (`src/x.rs` or `src/x/mod.rs` is module x) and whom each uses. */
function crateGraph(crate: string): Map<string, Set<string>> {
  const src = path.join(repoRoot, 'crates', crate, 'src');
  const graph = new Map<string, Set<string>>();
  for (const file of walk(src, '.rs')) {
    const rel = path.relative(src, file).split(path.sep);
    const name = rel.length === 1 ? rel[0]!.replace(/\.rs$/, '') : rel[0]!;
    if (name === 'lib' || name === 'main') continue;
    const uses = graph.get(name) ?? new Set<string>();
    for (const m of fs.readFileSync(file, 'utf8').replace(/\/\/.*$/gm, '').matchAll(/\bcrate::([a-z_][a-z0-9_]*)/g)) {
      if (m[1] !== name) uses.add(m[1]!);
    }
    graph.set(name, uses);
  }
  return graph;
}

/** One cycle of the graph as a path, or null. */
function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (!graph.has(m)) continue;
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

test('layers: no import cycle between the modules of each Rust crate', () => {
  for (const crate of fs.readdirSync(path.join(repoRoot, 'crates'))) {
    if (!fs.existsSync(path.join(repoRoot, 'crates', crate, 'src'))) continue;
    const graph = crateGraph(crate);
    assert.equal(findCycle(graph)?.join(' -> ') ?? null, null, `crate ${crate}`);
  }
});

test('layers: the cycle finder finds a planted cycle', () => {
  const g = new Map<string, Set<string>>([['link', new Set(['op'])], ['op', new Set(['sync'])], ['sync', new Set(['link'])], ['codec', new Set()]]);
  assert.deepEqual(findCycle(g), ['link', 'op', 'sync', 'link']);
  g.get('sync')!.delete('link');
  assert.equal(findCycle(g), null);
});
