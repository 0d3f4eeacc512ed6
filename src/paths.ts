// Where the croft package is installed, found from this file (works from src/ and from dist/src/).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  // Compiled code runs from <root>/dist/src: skip dist, whose package.json (if any) is not ours.
  while (!fs.existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'dist') {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${start}`);
    dir = up;
  }
  return dir;
}

/** The package root (where package.json, bin/, modules/ and native/ are). */
export const repoRoot = findRoot(path.dirname(fileURLToPath(import.meta.url)));
/** The croft command as a user runs it. */
export const croftJs = path.join(repoRoot, 'bin', 'croft.js');
