// Paths for tests: tests run from their TypeScript sources (vitest); what they start as a separate
// node program runs compiled, from dist/ (built by `make setup`); fixtures stay in the source tree.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { croftJs, repoRoot } from '../../src/paths.js';

export { repoRoot };
/** Source-tree fixtures folder (test/fixtures). */
export const fixtures = path.join(repoRoot, 'test', 'fixtures');
/** The croft command as a user runs it. */
export const croftBin = croftJs;
/** file: URL of a compiled module, for a child node program to import: compiledUrl('mirror/witness.js'). */
export function compiledUrl(relative: string): string {
  return pathToFileURL(path.join(repoRoot, 'dist', relative)).href;
}
