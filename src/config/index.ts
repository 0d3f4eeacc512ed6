// The configuration: load a directory, or check texts with the pure core.
export { loadConfig, checkConfigDir, diskFiles } from './load.js';
export { checkSources } from './check.js';
export type { CheckResult, SourceText } from './check.js';
export { ConfigError, formatProblems, formatProblem } from './problems.js';
export type { ConfigProblem } from './problems.js';
export type { FileAccess, FileStatus } from './files.js';
export { moduleKindProperties } from './schema.js';
export { defaults } from './defaults.js';
export type * from './types.js';
