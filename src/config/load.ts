// The driver: reads a config directory (cluster.yaml + modules/*.yaml) from disk and hands the
// texts to the pure check. Throws ConfigError with every problem found.
import fs from 'node:fs';
import path from 'node:path';
import type { CheckResult, SourceText } from './check.js';
import { checkSources } from './check.js';
import type { FileAccess } from './files.js';
import type { ConfigProblem } from './problems.js';
import { ConfigError } from './problems.js';
import type { Config } from './types.js';

/** The real file system. */
export const diskFiles: FileAccess = {
  stat(p) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      return undefined;
    }
    let executable = false;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      executable = true;
    } catch {
      executable = false;
    }
    return { isFile: st.isFile(), executable, mode: st.mode & 0o7777, uid: st.uid };
  },
  read(p) {
    try {
      return readCapped(p);
    } catch (e) {
      return { error: errorText(e) };
    }
  },
  daemonUid: process.getuid?.(),
};

/** No config file (nor key file) is larger than this; a larger one is refused, not read. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

class TooLarge extends Error {
  constructor(file: string, size: number) {
    super(`${file} is ${size} bytes; config files are limited to ${MAX_CONFIG_BYTES} bytes (1 MiB)`);
  }
}

/** Reads a file of at most MAX_CONFIG_BYTES (checked on the open file, so a growing file cannot pass). */
function readCapped(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size > MAX_CONFIG_BYTES) throw new TooLarge(file, size);
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_CONFIG_BYTES) throw new TooLarge(file, n);
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function errorText(e: unknown): string {
  if (e instanceof TooLarge) return e.message;
  const err = e as NodeJS.ErrnoException;
  return err.code ?? err.message ?? String(e);
}

const fileProblem = (file: string, message: string): ConfigProblem => ({ file, line: 1, column: 1, key: '', message });

/** Checks a config directory without throwing: the problems, or the config when there are none. */
export function checkConfigDir(dir: string): CheckResult {
  const absDir = path.resolve(dir);
  const clusterFile = path.join(dir, 'cluster.yaml');
  const readProblems: ConfigProblem[] = [];

  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    return { problems: [fileProblem(dir, `cannot read the config directory: ${errorText(e)}`)] };
  }
  if (!st.isDirectory()) {
    return { problems: [fileProblem(dir, 'not a directory; expected a config directory holding cluster.yaml and modules/*.yaml')] };
  }

  let clusterText = '';
  try {
    clusterText = readCapped(clusterFile).toString('utf8');
  } catch (e) {
    readProblems.push(fileProblem(clusterFile, e instanceof TooLarge ? e.message : `cannot read cluster.yaml: ${errorText(e)}; every config directory needs one`));
  }

  const modules: SourceText[] = [];
  const modulesDir = path.join(dir, 'modules');
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(modulesDir, { withFileTypes: true });
  } catch (e) {
    // No modules/ folder is a valid (if idle) cluster.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      readProblems.push(fileProblem(modulesDir, `cannot read the modules folder: ${errorText(e)}`));
    }
  }
  // A module is modules/<name>.yaml, or modules/<name>/module.yaml (a module folder with its
  // scripts, as in the repository's modules/ templates), named after the file or the folder.
  const moduleFiles: string[] = [];
  for (const e of entries) {
    const full = path.join(modulesDir, e.name);
    if (/\.ya?ml$/.test(e.name) && !fs.statSync(full, { throwIfNoEntry: false })?.isDirectory()) {
      moduleFiles.push(full);
    } else if (fs.statSync(full, { throwIfNoEntry: false })?.isDirectory()) {
      const inner = path.join(full, 'module.yaml');
      if (fs.existsSync(inner)) moduleFiles.push(inner);
    }
  }
  moduleFiles.sort();
  for (const file of moduleFiles) {
    try {
      modules.push({ file, text: readCapped(file).toString('utf8') });
    } catch (e) {
      readProblems.push(fileProblem(file, `cannot read the module file: ${errorText(e)}`));
    }
  }

  if (readProblems.some((p) => p.file === clusterFile)) {
    // Without cluster.yaml, module files cannot be checked against it: report what we have.
    return { problems: readProblems };
  }
  return checkSources(absDir, { file: clusterFile, text: clusterText }, modules, diskFiles, readProblems);
}

/** Loads and validates a config directory. Throws ConfigError listing every problem. */
export function loadConfig(dir: string): Config {
  const result = checkConfigDir(dir);
  if (!result.config) throw new ConfigError(result.problems);
  return result.config;
}
