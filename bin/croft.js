#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1 --single-threaded-gc
// Entry point of the `croft` command: the compiled CLI lives in dist/ (built by `make build`).
// --max-semi-space-size=1 (MiB): V8's young generation grows to 16 MiB per semi-space by default,
// which an idle daemon fills with short-lived heartbeat objects and keeps: measured ~50 MB less
// RSS per daemon at 8 nodes (bench/farm/REPORT.md, idle). Its objects die young, so the smaller
// space costs little. MALLOC_ARENA_MAX=2: glibc gives each thread that mallocs (libuv's pool running
// libnftables, the addon's threads) an arena of its own: ~9 MB less RSS with two (REPORT, idle).
// --single-threaded-gc: a daemon's heap is a few MiB, collected in well under a millisecond; V8's
// helper threads woken for each collection cost more than they save (idle, 8 nodes: 0.32 % of a
// core in those threads, 0.04 % with the flag, the main thread +0.13 %; REPORT, idle).
// glibc read it at start: it is removed below so that the applications the daemon's scripts start
// do not inherit it. top/lab/daemons.ts (DAEMON_ENV, DAEMON_NODE_FLAGS) starts the lab's daemons
// the same way.
import { main } from '../dist/top/cli/main.js';

delete process.env.MALLOC_ARENA_MAX;

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.stack : String(err)); process.exitCode = 1; },
);
