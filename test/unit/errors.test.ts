// The error catalogue (src/errors.ts): every code has a description and the HTTP status the API
// answers with it, and every CROFT_ERR_* code the Rust crates raise is one of the catalogue's (the
// napi binding hands its code to JS, where src/native turns it into a CroftError of that code).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'vitest';
import { codes, CroftError, isErrorCode, type ErrorCode } from '../../src/errors.js';
import { repoRoot } from '../helpers/paths.js';

test('every error code has a description and an HTTP status in 400..599, which its CroftError carries', () => {
  const all = Object.keys(codes) as ErrorCode[];
  assert.ok(all.length > 0);
  for (const code of all) {
    assert.match(code, /^CROFT_ERR_[A-Z_]*[A-Z]$/, code);
    const { description, statusCode } = codes[code];
    assert.ok(description.length > 0, `${code}: no description`);
    assert.ok(Number.isInteger(statusCode) && statusCode >= 400 && statusCode <= 599, `${code}: status ${statusCode}`);
    const e = new CroftError(code, 'x');
    assert.equal(e.statusCode, statusCode, code);
    // The status is the code's, not a field of the error: a logged error carries what it did before.
    assert.deepEqual(Object.keys(e).sort(), ['code', 'name']);
  }
  assert.equal(isErrorCode('CROFT_ERR_USAGE'), true);
  assert.equal(isErrorCode('toString'), false);
  assert.equal(isErrorCode('CROFT_ERR_NO_SUCH'), false);
});

function rustFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'target') out.push(...rustFiles(p));
    } else if (e.name.endsWith('.rs')) {
      out.push(p);
    }
  }
  return out;
}

/** Each CROFT_ERR_ string of crates/**.rs with where it stands; `CROFT_ERR_MIRROR_*` in a comment is a prefix. */
function rustCodes(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of rustFiles(path.join(repoRoot, 'crates'))) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const m of line.matchAll(/CROFT_ERR_[A-Z_]+/g)) {
        if (!found.has(m[0])) found.set(m[0], `${path.relative(repoRoot, file)}:${i + 1}`);
      }
    });
  }
  return found;
}

/** The codes (or prefixes) of `found` that the catalogue lacks, each with where it stands. */
function missingCodes(found: Map<string, string>, catalogue: readonly string[]): string[] {
  const missing: string[] = [];
  for (const [code, where] of found) {
    const known = code.endsWith('_') ? catalogue.some((c) => c.startsWith(code)) : catalogue.includes(code);
    if (!known) missing.push(`${code} (${where}) is not a code of src/errors.ts`);
  }
  return missing;
}

test('every CROFT_ERR_* code in crates/**/*.rs is a code of src/errors.ts', () => {
  const found = rustCodes();
  assert.ok(found.has('CROFT_ERR_MIRROR_MOUNT'), `the scan finds the crates' codes (found: ${[...found.keys()].join(', ')})`);
  assert.deepEqual(missingCodes(found, Object.keys(codes)), []);
});

test('the check names a code the catalogue lacks (and accepts a prefix some codes share)', () => {
  const planted = new Map([['CROFT_ERR_MIRROR_MOUNT', 'a.rs:1'], ['CROFT_ERR_MIRROR_', 'a.rs:2'], ['CROFT_ERR_MIRROR_NOPE', 'b.rs:7'], ['CROFT_ERR_NOPE_', 'c.rs:3']]);
  assert.deepEqual(missingCodes(planted, Object.keys(codes)), [
    'CROFT_ERR_MIRROR_NOPE (b.rs:7) is not a code of src/errors.ts',
    'CROFT_ERR_NOPE_ (c.rs:3) is not a code of src/errors.ts',
  ]);
});
