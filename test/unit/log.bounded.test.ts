// Issue 8, finding 10 (logging half): a flood of log records into a destination slower than the
// flood (a stuck pipe) grew the daemon without bound (pino's async buffer: 136 -> 770 MB in 24 s).
// The logger now drops and counts past its bounds, and says so once it recovers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'vitest';
import { pathToFileURL } from 'node:url';
import { createLogger, defaultLogLimits, logDropped, sinkOf } from '../../src/log/logger.js';
import { repoRoot } from '../helpers/paths.js';

/** A destination that takes nothing until released (a pipe nobody reads), then drains. */
class Stuck extends Writable {
  private held: (() => void)[] = [];
  private flowing = false;
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (this.flowing) cb();
    else this.held.push(() => cb());
  }
  release(): void {
    this.flowing = true;
    for (const cb of this.held.splice(0)) cb();
  }
}

const record = 'x'.repeat(1000);

test('finding 10: a flood into a destination that takes nothing stays bounded (buffered bytes under the cap, memory flat); drops are counted and reported once it drains', async () => {
  const dest = new Stuck();
  const log = createLogger({ node: 'n1', destination: dest, limits: { maxLinesPerSecond: 1e9 } });
  const sink = sinkOf(log)!;
  const before = logDropped().buffer_full;
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const flood = 200_000; // ~230 MB of JSON lines
  let maxBuffered = 0;
  for (let i = 0; i < flood; i++) {
    log.info({ event: 'script_output', i, line: record }, 'flood');
    if ((i & 1023) === 0) maxBuffered = Math.max(maxBuffered, sink.bufferedBytes());
  }
  const grownMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
  maxBuffered = Math.max(maxBuffered, sink.bufferedBytes());
  console.log(`# flood of ${flood} records (~${Math.round(flood * 1.1 / 1024)} MB): buffered at most ${(maxBuffered / 2 ** 20).toFixed(2)} MiB, `
    + `rss +${grownMb.toFixed(0)} MB, dropped ${sink.dropped.buffer_full}`);
  assert.ok(maxBuffered <= defaultLogLimits.maxBufferedBytes, `buffered ${maxBuffered} bytes`);
  assert.ok(maxBuffered > defaultLogLimits.maxBufferedBytes / 2, 'the buffer was used up to its cap');
  assert.ok(grownMb < 100, `rss grew by ${grownMb.toFixed(0)} MB for ~230 MB of records`);
  assert.ok(sink.dropped.buffer_full > flood * 0.9);
  assert.equal(logDropped().buffer_full - before, sink.dropped.buffer_full, 'the process counter (croft_log_dropped_total) follows');

  // The destination drains: what was buffered is written, and the next record is preceded by one
  // line saying how many were lost.
  dest.release();
  assert.ok(await sink.drain(5000));
  assert.equal(sink.bufferedBytes(), 0);
  const kept = dest.lines.length;
  assert.equal(sink.dropped.buffer_full + kept, flood, 'every record is written or counted as dropped');
  log.warn({ event: 'after' }, 'after the flood');
  assert.ok(await sink.drain(1000));
  const tail = dest.lines.slice(kept).map((l) => JSON.parse(l));
  assert.equal(tail.length, 2);
  assert.equal(tail[0].event, 'log_dropped');
  assert.equal(tail[0].level, 'warn');
  assert.equal(tail[0].node, 'n1');
  assert.equal(tail[0].dropped, sink.dropped.buffer_full);
  assert.match(tail[0].msg, new RegExp(`^${sink.dropped.buffer_full} log records dropped since .*buffer_full`));
  assert.equal(tail[1].event, 'after');
  // Reported once: the next record comes alone.
  log.info({ event: 'later' }, 'later');
  assert.equal(JSON.parse(dest.lines.at(-1)!).event, 'later');
  assert.equal(dest.lines.length, kept + 3);
  // pino's own flush(cb) answers too.
  await new Promise<void>((resolve) => log.flush(() => resolve()));
});

test('finding 10: past maxLinesPerSecond records are dropped and counted as rate', async () => {
  const dest = new Stuck();
  dest.release();
  const log = createLogger({ destination: dest, limits: { maxLinesPerSecond: 100 } });
  const sink = sinkOf(log)!;
  const t0 = Date.now();
  for (let i = 0; i < 5000; i++) log.info({ i }, 'burst');
  const seconds = Math.ceil((Date.now() - t0 + 1) / 1000);
  assert.ok(dest.lines.length <= 100 * seconds, `${dest.lines.length} lines written in ${seconds} s`);
  assert.equal(dest.lines.length + sink.dropped.rate, 5000);
  assert.ok(sink.dropped.rate >= 5000 - 100 * seconds);
});

test('finding 10: a process flooding its logger into a stdout pipe nobody reads keeps its memory bounded', async () => {
  // The daemon's own path: createLogger() on a real pipe (fd 1), not a test stream.
  const logger = pathToFileURL(path.join(repoRoot, 'dist', 'src', 'log', 'logger.js')).href;
  const script = `
    import { createLogger, sinkOf, logDropped } from ${JSON.stringify(logger)};
    const log = createLogger({ node: 'n1', limits: { maxLinesPerSecond: 1e9 } });
    const rss0 = process.memoryUsage().rss;
    const line = 'y'.repeat(1000);
    let maxBuffered = 0;
    const t0 = Date.now();
    for (let i = 0; i < 300000; i++) {
      log.info({ event: 'script_output', i, line }, 'flood');
      if (i % 1000 === 0) { maxBuffered = Math.max(maxBuffered, sinkOf(log).bufferedBytes()); await new Promise((r) => setImmediate(r)); }
    }
    process.stderr.write(JSON.stringify({ rss0, rss: process.memoryUsage().rss, maxBuffered, dropped: logDropped(), ms: Date.now() - t0 }) + '\\n');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  // stdout is never read: the pipe fills (64 KiB) and stays full.
  let err = '';
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  child.stdout.destroy();
  assert.equal(code, 0, err);
  const r = JSON.parse(err.trim().split('\n').at(-1)!);
  const grownMb = (r.rss - r.rss0) / 2 ** 20;
  console.log(`# 300,000 records (~330 MB) into a stuck stdout pipe: rss +${grownMb.toFixed(0)} MB, buffered at most ${(r.maxBuffered / 2 ** 20).toFixed(2)} MiB, dropped ${r.dropped.buffer_full}, ${r.ms} ms`);
  assert.ok(r.maxBuffered <= defaultLogLimits.maxBufferedBytes, `buffered ${r.maxBuffered}`);
  assert.ok(r.dropped.buffer_full > 290_000, `dropped ${r.dropped.buffer_full}`);
  assert.ok(grownMb < 100, `rss grew by ${grownMb.toFixed(0)} MB`);
});
