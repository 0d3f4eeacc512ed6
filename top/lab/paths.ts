// Paths of the lab's own files in the package.
import path from 'node:path';
import { repoRoot } from '../../src/paths.js';

export { croftJs, repoRoot } from '../../src/paths.js';
/** The userspace netem stand-in (see netem.ts): a source file, run by python3. */
export const netemRelayScript = path.join(repoRoot, 'top', 'lab', 'netem_relay.py');
/** The collector of acknowledgements in the client namespace (collector.py), run by python3. */
export const collectorScript = path.join(repoRoot, 'top', 'lab', 'collector.py');
/** The record writer `croft lab chaos` runs on a mirror's primary (chaos_writer.py). */
export const chaosWriterScript = path.join(repoRoot, 'top', 'lab', 'chaos_writer.py');
