// Checks before building a lab: a clear message instead of a half-built topology.
import fs from 'node:fs';
import path from 'node:path';
import { CroftError } from '../../src/errors.js';

export const REQUIRED_TOOLS = ['ip', 'nsenter', 'unshare', 'tc', 'mount', 'umount'] as const;

export function findTool(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const file = path.join(dir || '.', tool);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch { /* next */ }
  }
  return undefined;
}

export function preflight(): void {
  if (process.getuid?.() !== 0) {
    throw new CroftError('CROFT_ERR_LAB', 'the lab creates network and mount namespaces: run it as root');
  }
  const missing = REQUIRED_TOOLS.filter((t) => findTool(t) === undefined);
  if (missing.length > 0) {
    throw new CroftError('CROFT_ERR_LAB', `missing tools: ${missing.join(', ')} (install iproute2 and util-linux)`);
  }
}
