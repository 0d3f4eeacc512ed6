// Paths for tests: compiled tests run from dist/test/..., fixtures stay in the source tree.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';

function findRoot(start: string): string {
  let dir = start;
  while (!fs.existsSync(path.join(dir, 'package.json')) || dir.endsWith(`${path.sep}dist`)) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${start}`);
    dir = up;
  }
  return dir;
}

/** The repository root (where package.json is). */
export const repoRoot = findRoot(path.dirname(fileURLToPath(import.meta.url)));
/** Source-tree fixtures folder (test/fixtures). */
export const fixtures = path.join(repoRoot, 'test', 'fixtures');
/** The croft command as a user runs it. */
export const croftBin = path.join(repoRoot, 'bin', 'croft.js');
