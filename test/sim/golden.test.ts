// The golden-scenario format and runner (scenario.ts) on a toy domain: what a scenario file may look
// like, and that each kind of mistake in one is caught rather than silently passing.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { formatScenario, parseChecker, parseScenario, replay, type Domain } from './scenario.js';

/** Steps print their words reversed; `quiet` prints nothing; the header prints its n. */
const echo: Domain = {
  name: 'echo',
  start(o) {
    const n = o.num('n');
    const tags = o.all('tag');
    return {
      output: [`n=${n}${tags.length ? ` tags=${tags.join(',')}` : ''}`],
      driver: { step: (line) => (line === 'quiet' ? [] : [line.split(' ').reverse().join(' ')]) },
    };
  },
};

const good = `# a comment
echo n=2 tag=a tag=b
  n=2 tags=a,b
a b
  b a

# a blank line and a comment are kept
quiet
c d e
  e d c
# the end
`;

test('a scenario in the format replays to itself, and formatting a parse gives the text back', () => {
  assert.equal(replay(good, echo), good);
  assert.equal(formatScenario(parseScenario(good)), good);
  const s = parseScenario(good);
  assert.deepEqual(s.steps.map((e) => [e.line, e.text, e.expected]), [[4, 'a b', ['b a']], [8, 'quiet', []], [9, 'c d e', ['e d c']]]);
});

test('a changed, missing or extra output line shows in the replay', () => {
  for (const bad of [good.replace('  b a', '  b x'), good.replace('  e d c\n', ''), good.replace('quiet\n', 'quiet\n  ok\n')]) {
    assert.notEqual(replay(bad, echo), bad);
  }
});

test('mistakes in a scenario file are errors', () => {
  assert.throws(() => replay('echo n=1 typo=3\n', echo), /unknown header options: typo=3/);
  assert.throws(() => replay('echo\n', echo), /n= is required/);
  assert.throws(() => replay('echo n=1 n=2\n', echo), /n= given twice/);
  assert.throws(() => replay('echo n=x\n', echo), /not a number/);
  assert.throws(() => replay('mirror n=1\n', echo), /header names the domain/);
  assert.throws(() => replay('echo n=1 loose\n', echo), /not key=value/);
  assert.throws(() => replay('# only a comment\n', echo), /no header/);
  assert.throws(() => replay('  output first\necho n=1\n', echo), /line 1: output \(indented\) without a line above/);
  assert.throws(() => replay('echo n=1\n# note\n  output under a comment\n', echo), /line 3: output/);
  assert.throws(() => replay('echo n=1\na\n\tb\n', echo), /line 3: indent output by exactly two spaces/);
  assert.throws(() => replay('echo n=1\na\n b\n', echo), /line 3: indent/);
  const failing: Domain = { name: 'echo', start: () => ({ output: [], driver: { step: () => { throw new Error('boom'); } } }) };
  assert.throws(() => replay('echo\nfirst step\n', failing), /line 2 "first step": boom/);
});

test('checker specs: name:kind:on_failure with rise and fall 1 unless given', () => {
  assert.deepEqual(parseChecker('web:app:restart'), { name: 'web', kind: 'app', onFailure: 'restart', rise: 1, fall: 1 });
  assert.deepEqual(parseChecker('db:dependency:wait:2:3'), { name: 'db', kind: 'dependency', onFailure: 'wait', rise: 2, fall: 3 });
  assert.throws(() => parseChecker('web:app'), /want name:kind:on_failure/);
  assert.throws(() => parseChecker('web:app:restart:1:1:9'), /want name:kind:on_failure/);
  assert.throws(() => parseChecker('web:app:restart:x:1'), /want name:kind:on_failure/);
});
