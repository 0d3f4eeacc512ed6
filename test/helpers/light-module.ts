// A light module for lab tests: its application is a `sleep` recorded in /run/croft/<name>.pid
// (private to each lab node), so a test can tell whether a reload restarted it (a new pid) or not.
import fs from 'node:fs';
import path from 'node:path';

export function writeLightModule(configDir: string, name: string, timeoutMs: number): void {
  const dir = path.join(configDir, 'modules', name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'start_both'),
    `#!/bin/sh\nsetsid sleep 100000 </dev/null >/dev/null 2>&1 &\necho $! > /run/croft/${name}.pid\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'stop_both'),
    `#!/bin/sh\n[ -f /run/croft/${name}.pid ] && kill "$(cat /run/croft/${name}.pid)"\nrm -f /run/croft/${name}.pid\nexit 0\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'module.yaml'),
    `kind: light\nscripts:\n  start_both: ./start_both\n  stop_both: ./stop_both\n  timeout_ms: ${timeoutMs}\n`);
}
