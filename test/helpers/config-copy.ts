// A config directory from the repository (examples/, test/fixtures/configs/*), copied to a fresh
// temporary folder with the modes croft requires (config/perms.ts): git stores only 0644/0755, and
// a clone made with umask 002 has group-writable files, which croft rightly refuses. The copy is
// made group/other-unwritable, and cluster.yaml and *.key files private (0600).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function fixModes(p: string): void {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    fs.chmodSync(p, st.mode & 0o755);
    for (const e of fs.readdirSync(p)) fixModes(path.join(p, e));
    return;
  }
  const name = path.basename(p);
  fs.chmodSync(p, name === 'cluster.yaml' || name.endsWith('.key') ? 0o600 : st.mode & 0o755);
}

/** Copies `src` into a new temporary folder (removed by the caller) and returns it. */
export function privateConfigCopy(src: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-config-'));
  fs.cpSync(src, dir, { recursive: true });
  fixModes(dir);
  return dir;
}
