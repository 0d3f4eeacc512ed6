// The test runner's settings: three projects, run one after the other by `make test` (Makefile).
// Tests run from their TypeScript sources (vitest transforms them); what they spawn as a separate
// program (bin/croft.js, compiled modules under dist/) is built by `make setup` first.
import { defineConfig } from 'vitest/config';

// No test had a time limit under node:test, and a lab suite takes minutes: a limit only to end a
// hung run. A suite's own { timeout } still applies to each of its tests.
const LIMIT_MS = 20 * 60_000;

export default defineConfig({
  test: {
    testTimeout: LIMIT_MS,
    hookTimeout: LIMIT_MS,
    teardownTimeout: 60_000,
    // Each file in its own child process (the native addon, process-wide state such as umask and
    // signal handlers): as node --test ran them.
    pool: 'forks',
    // Hooks run in the order written (node:test's order: afterAll hooks clean up in that order).
    sequence: { hooks: 'list' },
    // The figures tests print ("# ..." lines) go straight to the output, unbuffered and unlabelled,
    // as under node --test.
    disableConsoleIntercept: true,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'sim', include: ['test/sim/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // Labs create network namespaces and daemons on a 2-core machine: one file at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
