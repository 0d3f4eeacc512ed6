// Replays every golden scenario in test/scenarios/membership against the core and compares the trace.
// UPDATE=1 rewrites the expected outputs (then read the diff before committing it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/paths.js';
import { formatScenario, parseScenario, ScenarioRunner } from './scenario.js';

const dir = path.join(repoRoot, 'test', 'scenarios', 'membership');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

test('there are golden membership scenarios', () => {
  assert.ok(files.length >= 6, `only ${files.length} scenarios in ${dir}`);
});

for (const file of files) {
  test(`scenario ${file}`, () => {
    const full = path.join(dir, file);
    const blocks = parseScenario(fs.readFileSync(full, 'utf8'));
    const runner = new ScenarioRunner();
    const actual = blocks.map((b) => ({ ...b, expected: runner.run(b.command) }));
    if (process.env.UPDATE === '1') {
      fs.writeFileSync(full, formatScenario(actual));
      return;
    }
    for (const [i, b] of blocks.entries()) {
      assert.deepEqual(actual[i]?.expected, b.expected, `${file}: output of "${b.command}" (block ${i + 1}) differs; UPDATE=1 rewrites`);
    }
  });
}
