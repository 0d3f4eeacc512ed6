#!/usr/bin/env node
// Entry point of the `croft` command: the compiled CLI lives in dist/ (built by `make build`).
import { main } from '../dist/top/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.stack : String(err)); process.exitCode = 1; },
);
