// `croft check <dir> [--json]`: exit codes 0/1/2, the summary, the problems, and the JSON shape.
import { afterAll, test } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkCommand } from '../../top/cli/check.js';
import { repoRoot } from '../helpers/paths.js';
import { privateConfigCopy } from '../helpers/config-copy.js';

function capture(): { out: { log(s: string): void; error(s: string): void }; stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { out: { log: (s) => stdout.push(s), error: (s) => stderr.push(s) }, stdout, stderr };
}

// A copy with the modes croft requires (git stores 0644; the examples' cluster.yaml holds the key inline).
const examples = privateConfigCopy(path.join(repoRoot, 'examples'));
afterAll(() => fs.rmSync(examples, { recursive: true, force: true }));

test('a valid dir: exit 0 with cluster name, nodes and modules', async () => {
  const c = capture();
  assert.equal(await checkCommand([examples], c.out), 0);
  const text = c.stdout.join('\n');
  assert.match(text, /configuration OK/);
  assert.match(text, /cluster demo: 3 nodes \(n1, n2, n3\)/);
  assert.match(text, /module web: light on n1, n2, n3, 5 checkers/);
  assert.deepEqual(c.stderr, []);
});

test('an invalid dir: exit 1 with every problem as file:line:column: key: message', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-check-test-'));
  try {
    fs.writeFileSync(
      path.join(dir, 'cluster.yaml'),
      'name: t\nkey: "0123456789abcdef0123456789abcdef"\nnodes:\n  n1: { addresses: [10.0.0.1], weight: heavy }\nlanz: [lan0]\n',
      { mode: 0o600 },
    );
    const c = capture();
    assert.equal(await checkCommand([dir], c.out), 1);
    const text = c.stderr.join('\n');
    const file = path.join(dir, 'cluster.yaml');
    assert.ok(text.includes(`${file}:4:40: nodes.n1.weight: expected a number above 0 and at most 1000, got "heavy"`), text);
    assert.ok(text.includes(`${file}:5:1: lanz: unknown key "lanz"; did you mean "lans"?`), text);
    assert.match(text, /2 problems/);

    const j = capture();
    assert.equal(await checkCommand([dir, '--json'], j.out), 1);
    const parsed = JSON.parse(j.stdout.join('\n')) as { ok: boolean; problems: { file: string; line: number; column: number; key: string; message: string }[] };
    assert.equal(parsed.ok, false);
    assert.deepEqual(parsed.problems.map((p) => [p.line, p.column, p.key]), [[4, 40, 'nodes.n1.weight'], [5, 1, 'lanz']]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--json on a valid dir prints ok: true and no problems', async () => {
  const c = capture();
  assert.equal(await checkCommand(['--json', examples], c.out), 0);
  assert.deepEqual(JSON.parse(c.stdout.join('\n')), { ok: true, problems: [] });
});

test('usage errors exit 2', async () => {
  for (const args of [[], [examples, examples], [examples, '--jsn'], ['--json=yes', examples]]) {
    const c = capture();
    assert.equal(await checkCommand(args, c.out), 2, `args ${JSON.stringify(args)}`);
    assert.match(c.stderr.join('\n'), /usage: croft check <config-dir> \[--json\]/);
  }
});
