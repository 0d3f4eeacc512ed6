// One parsed YAML file that remembers where every key and value came from, so that a problem found
// on the plain data (by the schema or by cross-file checks) is reported at its file, line and column.
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type { ConfigProblem } from './problems.js';

/** A path into the parsed data: map keys and list indexes. */
export type DataPath = readonly (string | number)[];

/** Point at the key itself (unknown key) or at its value (wrong value; the default). */
export type Anchor = 'key' | 'value';

export interface Source {
  file: string;
  /** The plain data (undefined for an empty file or when the YAML could not be parsed). */
  data: unknown;
  /** YAML syntax problems (the data is unusable when there are any). */
  syntaxProblems: ConfigProblem[];
  /** 1-based line and column of the node at `path`, or of its nearest existing ancestor. */
  locate(path: DataPath, anchor?: Anchor): { line: number; column: number };
  /** A problem at `path`, with its position filled in. */
  problem(path: DataPath, message: string, anchor?: Anchor): ConfigProblem;
}

/** `nodes.n2.addresses[1]`; keys that are not plain words are quoted: `nodes["a.b"]`. */
export function keyString(path: DataPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function parseSource(file: string, text: string): Source {
  const lineCounter = new LineCounter();
  // uniqueKeys (the default) turns a key given twice into an error instead of silently keeping one.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): { line: number; column: number } => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const syntaxProblems: ConfigProblem[] = [...doc.errors].map((e) => ({
    file,
    ...at(e.pos[0]),
    key: '',
    message: `YAML syntax error: ${e.message.split('\n')[0] ?? e.code}`,
  }));

  let data: unknown;
  if (syntaxProblems.length === 0) {
    try {
      // An alias bomb (aliases of aliases, each doubling the data) is refused instead of expanded.
      data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown;
    } catch (e) {
      const where = firstAlias(doc);
      syntaxProblems.push({
        file,
        ...at(where.offset),
        key: keyString(where.path),
        message: `YAML aliases expand to too much data (${e instanceof Error ? e.message : String(e)}); a croft config needs few aliases (at most ${MAX_ALIAS_COUNT} expansions)`,
      });
    }
  }

  const locate = (path: DataPath, anchor: Anchor = 'value'): { line: number; column: number } =>
    at(findOffset(doc, path, anchor));
  const problem = (path: DataPath, message: string, anchor: Anchor = 'value'): ConfigProblem => ({
    file,
    ...locate(path, anchor),
    key: keyString(path),
    message,
  });
  return { file, data, syntaxProblems, locate, problem };
}

/** yaml's default: how many nodes aliases may expand to, in all (an alias bomb needs far more). */
export const MAX_ALIAS_COUNT = 100;

/** Where the first alias is, and the key path that leads to it (for the message). */
function firstAlias(doc: Document): { offset: number; path: (string | number)[] } {
  let found: { offset: number; path: (string | number)[] } = { offset: 0, path: [] };
  visit(doc, {
    Alias(_key, node, ancestors) {
      const p: (string | number)[] = [];
      for (let i = 0; i < ancestors.length; i++) {
        const a = ancestors[i];
        if (isPair(a) && isScalar(a.key)) p.push(String(a.key.value));
        else if (isSeq(a)) {
          const next = ancestors[i + 1] ?? node;
          p.push(a.items.indexOf(next as never));
        }
      }
      found = { offset: startOf(node) ?? 0, path: p };
      return visit.BREAK;
    },
  });
  return found;
}

function resolve(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function startOf(node: unknown): number | undefined {
  const range = (node as YamlNode | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/**
 * Offset of the node at `path`. When the path runs out of the document (a missing key), the
 * position of the deepest existing node: for a map reached through a key, that key (so "missing
 * key in `tls`" points at the `tls:` line); for the root, the start of the file.
 */
function findOffset(doc: Document, path: DataPath, anchor: Anchor): number {
  let node: unknown = resolve(doc, doc.contents);
  let best = 0; // start of file
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return best;
      const keyStart = startOf(pair.key);
      if (last && anchor === 'key' && keyStart !== undefined) return keyStart;
      const valueStart = startOf(pair.value);
      // `key:` with nothing after it has a value node without a useful position: use the key.
      best = last && valueStart !== undefined && !isEmptyScalar(pair.value) ? valueStart : (keyStart ?? best);
      node = resolve(doc, pair.value);
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      const itemStart = startOf(item);
      if (item === undefined || itemStart === undefined) return best;
      best = itemStart;
      node = resolve(doc, item);
    } else {
      return best;
    }
  }
  return best;
}

function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && node.source === '';
}
