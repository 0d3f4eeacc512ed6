// Paths for tests: compiled tests run from dist/test/..., fixtures stay in the source tree.
import path from 'node:path';
import { croftJs, repoRoot } from '../../src/paths.js';

export { repoRoot };
/** Source-tree fixtures folder (test/fixtures). */
export const fixtures = path.join(repoRoot, 'test', 'fixtures');
/** The croft command as a user runs it. */
export const croftBin = croftJs;
