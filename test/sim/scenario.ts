// Golden scenarios: the one format, parser and runner of test/scenarios/{membership,module,mirror}
// (etcd raft's data-driven tests are the model). A scenario is a short script replayed against a
// simulated world; under each line of it, indented by two spaces, is what that line made happen, as
// checked in. Each domain supplies a driver that builds the world from the header and runs the steps
// (membership.scenarios.test.ts, module.scenarios.test.ts, mirror.scenarios.test.ts).
//
//   # Comments and blank lines are kept where they are.
//   mirror witness=redis ttl=3000 checker=app:app:restart     <- header: the domain, then key=value
//     = t=0 n1=STOP/unknown/g0 n2=STOP/unknown/g0 lease=-      <- what the header prints (may be none)
//   start n1                                                  <- a step (its words are the driver's)
//     n1 < command start                                      <- its output; no lines: it did nothing
//
// The header is the first line that is neither blank nor a comment; its first word names the domain
// (the folder's name), the rest are key=value options (a key may repeat, e.g. checker=); an option
// the driver does not read is an error, so that a typo does not silently give the default. Every
// line indented by two spaces is output: the runner regenerates all of them and the file passes
// when the result is the same text. CROFT_UPDATE_GOLDEN=1 rewrites the files (then read the diff!).
import { test } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/paths.js';

/** An input line (the header or a step) with the output checked in under it. */
export interface Entry {
  /** 1-based line number in the file. */
  line: number;
  text: string;
  expected: string[];
  /** Blank and comment lines just before it. */
  notes: string[];
}

export interface Scenario {
  header: Entry;
  steps: Entry[];
  /** Comments after the last step. */
  tail: string[];
}

const indent = '  ';

export function parseScenario(text: string): Scenario {
  const entries: Entry[] = [];
  let notes: string[] = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    if (raw.startsWith(indent)) {
      const last = entries[entries.length - 1];
      assert.ok(last && notes.length === 0, `line ${i + 1}: output (indented) without a line above it`);
      last.expected.push(raw.slice(indent.length));
      continue;
    }
    const line = raw.trimEnd();
    assert.ok(!/^\s/.test(line), `line ${i + 1}: indent output by exactly two spaces`);
    if (line === '' || line.startsWith('#')) {
      notes.push(line);
      continue;
    }
    entries.push({ line: i + 1, text: line, expected: [], notes });
    notes = [];
  }
  const [header, ...steps] = entries;
  assert.ok(header, 'no header: the first line that is not a comment is `<domain> key=value...`');
  while (notes.length > 0 && notes[notes.length - 1] === '') notes.pop();
  return { header, steps, tail: notes };
}

export function formatScenario(s: Scenario): string {
  const out: string[] = [];
  for (const e of [s.header, ...s.steps]) out.push(...e.notes, e.text, ...e.expected.map((l) => indent + l));
  out.push(...s.tail);
  return `${out.join('\n')}\n`;
}

/** The header's key=value options, for the driver to read; reading marks an option used. */
export class HeaderOptions {
  private readonly used = new Set<string>();

  constructor(private readonly pairs: readonly (readonly [string, string])[]) {}

  static parse(words: readonly string[]): HeaderOptions {
    return new HeaderOptions(
      words.map((w) => {
        const at = w.indexOf('=');
        assert.ok(at > 0, `header option "${w}" is not key=value`);
        return [w.slice(0, at), w.slice(at + 1)] as const;
      }),
    );
  }

  has(key: string): boolean {
    this.used.add(key);
    return this.pairs.some(([k]) => k === key);
  }

  /** Every value of a key that may repeat, in order. */
  all(key: string): string[] {
    this.used.add(key);
    return this.pairs.filter(([k]) => k === key).map(([, v]) => v);
  }

  str(key: string, fallback?: string): string {
    const vs = this.all(key);
    assert.ok(vs.length <= 1, `header option ${key}= given twice`);
    const v = vs[0] ?? fallback;
    assert.ok(v !== undefined, `header option ${key}= is required`);
    return v;
  }

  num(key: string, fallback?: number): number {
    const v = Number(this.str(key, fallback === undefined ? undefined : String(fallback)));
    assert.ok(Number.isFinite(v), `header option ${key}= is not a number`);
    return v;
  }

  /** Throws on an option no driver read. */
  checkAllUsed(): void {
    const unknown = this.pairs.filter(([k]) => !this.used.has(k)).map(([k, v]) => `${k}=${v}`);
    assert.deepEqual(unknown, [], `unknown header options: ${unknown.join(' ')}`);
  }
}

/** A checker in a header: checker=<name>:<kind>:<on_failure>[:<rise>:<fall>] (rise and fall 1 if left out). */
export function parseChecker(spec: string): { name: string; kind: string; onFailure: string; rise: number; fall: number } {
  const [name, kind, onFailure, rise = '1', fall = '1', ...extra] = spec.split(':');
  const [r, f] = [Number(rise), Number(fall)];
  assert.ok(name && kind && onFailure && extra.length === 0 && r >= 1 && f >= 1, `checker=${spec}: want name:kind:on_failure[:rise:fall]`);
  return { name, kind, onFailure, rise: r, fall: f };
}

export interface Driver {
  /** Runs one step (the line as written); returns what it printed, none if nothing happened. */
  step(line: string): string[];
}

export interface Domain {
  /** The header's first word and the folder's name under test/scenarios. */
  name: string;
  /** Builds the world the header describes; returns its driver and what the header prints. */
  start(opts: HeaderOptions): { driver: Driver; output: string[] };
}

/** Replays a scenario's lines; returns the file as it should read, every output regenerated. */
export function replay(text: string, domain: Domain): string {
  const s = parseScenario(text);
  const [name, ...words] = s.header.text.split(/\s+/);
  assert.equal(name, domain.name, `line ${s.header.line}: the header names the domain, "${domain.name} key=value..."`);
  const opts = HeaderOptions.parse(words);
  const { driver, output } = domain.start(opts);
  opts.checkAllUsed();
  const steps = s.steps.map((e) => {
    try {
      return { ...e, expected: driver.step(e.text) };
    } catch (err) {
      throw new Error(`line ${e.line} "${e.text}": ${(err as Error).message}`, { cause: err });
    }
  });
  return formatScenario({ header: { ...s.header, expected: output }, steps, tail: s.tail });
}

/** Registers one test per file of test/scenarios/<domain>, and one that there are at least `min`. */
export function goldenTests(domain: Domain, min: number): void {
  const dir = path.join(repoRoot, 'test', 'scenarios', domain.name);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort() : [];
  test(`there are at least ${min} ${domain.name} scenarios`, () => {
    assert.ok(files.length >= min, `found ${files.length} in ${dir}`);
  });
  for (const f of files) {
    test(`${domain.name} scenario ${f}`, () => {
      const p = path.join(dir, f);
      const text = fs.readFileSync(p, 'utf8');
      const got = replay(text, domain);
      if (process.env.CROFT_UPDATE_GOLDEN === '1') {
        fs.writeFileSync(p, got);
        return;
      }
      const [a, b] = [got.split('\n'), text.split('\n')];
      let at = 0;
      while (at < a.length && a[at] === b[at]) at++;
      assert.equal(got, text, `${f}:${at + 1} differs (CROFT_UPDATE_GOLDEN=1 rewrites the file; review the diff)`);
    });
  }
}
