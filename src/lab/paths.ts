// Where the croft package is installed, found from this file (works from src/ and from dist/src/).
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';

function findRoot(start: string): string {
  let dir = start;
  while (!fs.existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'dist') {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${start}`);
    dir = up;
  }
  return dir;
}

export const repoRoot = findRoot(path.dirname(fileURLToPath(import.meta.url)));
export const croftJs = path.join(repoRoot, 'bin', 'croft.js');
/** The userspace netem stand-in (see netem.ts): a source file, run by python3. */
export const netemRelayScript = path.join(repoRoot, 'src', 'lab', 'netem_relay.py');
