// Notifications and maintenance on a 2-node lab (issue 12, parts 6 and 7), with a mirror module
// whose application is a small HTTP server and whose app checker stops the module when the server
// is gone (test/fixtures/notify-lab). cluster.yaml sends every event to a webhook receiver in the
// lab's client namespace and to an exec hook that writes a file on each node.
// - maintenance on (n1, the PRIM): killing the server fails over nothing; the checker's verdict is
//   suppressed, and said so (log, webhook);
// - maintenance off: the failure acts: n1 stops, n2 takes the application over (failover);
// - the webhook receiver got each node's events in order, the failover among them; the exec hook ran.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import type { NotifyEvent } from '../../top/notify/event.js';
import { daemonLog, sleep, waitFor } from '../helpers/cluster.js';
import { mirrorStatus, waitStates } from '../helpers/mirror-lab.js';
import { fixtures } from '../helpers/paths.js';

const MODULE = 'notify-lab';
const HOOK_PORT = 7071;

describe('notifications and maintenance in a lab', { timeout: 150_000 }, () => {
  let lab: Lab | undefined;
  let receiver: ChildProcess | undefined;
  let config: string;
  let tmp: string;
  const received = () => path.join(tmp, 'events.jsonl');

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-notify-lab-'));
    config = path.join(tmp, 'config');
    fs.cpSync(path.join(fixtures, 'notify-lab'), path.join(config, 'modules', MODULE), { recursive: true });
    fs.rmSync(path.join(config, 'modules', MODULE, 'receiver.py'));
    fs.renameSync(path.join(config, 'modules', MODULE, 'notify-hook'), path.join(config, 'notify-hook'));
    lab = await Lab.up({ name: `nm${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500, daemons: false });
    const client = lab.clientAddresses()[0]!;
    fs.appendFileSync(path.join(lab.configDir, 'cluster.yaml'), [
      'notify:',
      `  webhook: { url: "http://${client}:${HOOK_PORT}/croft", backoff_ms: 100, timeout_ms: 2000 }`,
      '  exec: { program: ./notify-hook, timeout_ms: 5000 }',
      '',
    ].join('\n'));
    receiver = lab.spawn('client', ['python3', path.join(fixtures, 'notify-lab', 'receiver.py'), String(HOOK_PORT), received(), client], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      receiver!.once('error', reject);
      receiver!.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
      receiver!.stdout!.once('data', () => resolve());
    });
    await lab.start('n1');
    await lab.start('n2');
  });

  afterAll(async () => {
    if (receiver?.pid && receiver.exitCode === null) {
      try { process.kill(receiver.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await lab?.down();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const events = (): NotifyEvent[] => (fs.existsSync(received())
    ? fs.readFileSync(received(), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as NotifyEvent) : []);
  const serverPid = async (node: string): Promise<number | null> => {
    const lib = path.join('/etc/croft/modules', MODULE, 'lib.sh');
    const r = await lab!.exec(node, ['sh', '-c', `. '${lib}' && p=$(cat "$PIDFILE" 2>/dev/null) && ours "$p" && echo "$p"`]);
    return r.code === 0 ? Number(r.stdout.trim()) : null;
  };
  const croft = async (node: string, ...argv: string[]) => {
    const r = await lab!.exec(node, ['croft', ...argv]);
    assert.equal(r.code, 0, `croft ${argv.join(' ')} on ${node}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  test('maintenance on: the application killed, no failover; off: it fails over; the webhook and the hook saw it in order', async () => {
    const l = lab!;
    const t0 = Date.now();
    await waitStates(l, { n1: 'WAIT', n2: 'WAIT' }, 20_000, MODULE);
    await croft('n1', 'prim', MODULE);
    await waitStates(l, { n1: 'PRIM', n2: 'SECOND' }, 30_000, MODULE);
    await waitFor('the server runs on n1', async () => (await serverPid('n1')) !== null, 10_000, 100);

    // Maintenance on, then the application dies: nothing moves.
    assert.match(await croft('n1', 'maintenance', 'on', MODULE), /maintenance on for notify-lab on n1/);
    assert.match(await croft('n1', 'status'), /PRIM g\d+ \[maint\]/);
    const pid = (await serverPid('n1'))!;
    const killedAt = Date.now();
    assert.equal((await l.exec('n1', ['kill', '-9', String(pid)])).code, 0);
    await waitFor('n1 logs the suppressed verdict', () => daemonLog(l, 'n1').some((x) => x.event === 'suppressed' && Date.parse(x.time) >= killedAt), 10_000, 100);
    await sleep(2000); // ten more probes, all failed
    assert.equal((await mirrorStatus(l, 'n1', MODULE))?.state, 'PRIM', 'n1 stays PRIM in maintenance');
    assert.equal((await mirrorStatus(l, 'n2', MODULE))?.state, 'SECOND', 'n2 does not take over');
    assert.equal(await serverPid('n1'), null, 'and croft did not restart the application either');
    console.log(`# maintenance on: the application killed on the PRIM, ${Date.now() - killedAt} ms later n1 PRIM, n2 SECOND (no failover)`);

    // Maintenance off: the failed checker acts.
    const offAt = Date.now();
    await croft('n1', 'maintenance', 'off', MODULE);
    const failoverMs = await waitStates(l, { n2: 'ALONE' }, 20_000, MODULE);
    await waitFor('the server runs on n2', async () => (await serverPid('n2')) !== null, 10_000, 100);
    assert.equal((await mirrorStatus(l, 'n1', MODULE))?.state, 'STOP', 'n1 stopped (on_failure stop)');
    console.log(`# maintenance off -> n2 ALONE in ${failoverMs} ms (${Date.now() - offAt} ms with the server running on n2)`);

    // The webhook receiver: every node's events in their order, the failover among them.
    await waitFor('the failover notified', () => events().some((e) => e.node === 'n2' && e.kind === 'failover'), 10_000, 100);
    await waitFor('n1 STOP notified', () => events().some((e) => e.node === 'n1' && e.kind === 'state' && e.to === 'STOP'), 10_000, 100);
    const all = events();
    for (const node of ['n1', 'n2']) {
      const seqs = all.filter((e) => e.node === node).map((e) => e.sequence);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${node}'s events arrived in order`);
      assert.equal(new Set(seqs).size, seqs.length, `${node}: each once`);
    }
    const n1 = all.filter((e) => e.node === 'n1' && e.module === MODULE);
    const at = (pred: (e: NotifyEvent) => boolean, what: string): number => {
      const i = n1.findIndex(pred);
      assert.ok(i >= 0, `n1 notified ${what}: ${JSON.stringify(n1.map((e) => [e.kind, e.from, e.to, e.suppressed ?? false]))}`);
      return i;
    };
    const on = at((e) => e.kind === 'maintenance' && e.to === 'on', 'maintenance on');
    const suppressed = at((e) => e.kind === 'checker' && e.suppressed === true && e.to === 'failed', 'the suppressed checker failure');
    const off = at((e) => e.kind === 'maintenance' && e.to === 'off', 'maintenance off');
    const failed = at((e) => e.kind === 'checker' && !e.suppressed && e.to === 'failed', 'the checker failure');
    const left = at((e) => e.kind === 'state' && e.from === 'PRIM', 'n1 leaving PRIM'); // PRIM -> STOP at once (mirror/transitions.ts)
    const stop = at((e) => e.kind === 'state' && e.to === 'STOP', 'n1 STOP');
    assert.ok(on < suppressed && suppressed < off && off < failed && failed < left && left <= stop, `order on n1: ${[on, suppressed, off, failed, left, stop]}`);
    assert.match(n1[suppressed]!.cause, /on_failure stop suppressed \(maintenance\)/);
    assert.ok(all.some((e) => e.node === 'n1' && e.kind === 'peer' && e.peer === 'n2' && e.to === 'UP'), 'n1 notified n2 up');
    const fo = all.find((e) => e.node === 'n2' && e.kind === 'failover')!;
    assert.deepEqual([fo.module, fo.from, fo.to], [MODULE, 'SECOND', 'ALONE']);
    assert.ok(Date.parse(fo.time) >= offAt - 1000);

    // The exec hook ran on n2 for the failover (its own file on that node), and on n1.
    const hook2 = (await l.exec('n2', ['cat', '/run/croft/notify-hook.log'])).stdout;
    assert.match(hook2, new RegExp(`^failover ${MODULE} SECOND ALONE seq=${fo.sequence} node=n2$`, 'm'));
    const hook1 = (await l.exec('n1', ['cat', '/run/croft/notify-hook.log'])).stdout;
    assert.match(hook1, new RegExp(`^maintenance ${MODULE} off on seq=\\d+ node=n1$`, 'm'));

    // Metrics: what was sent, nothing failed or dropped.
    const metrics = (await l.exec('n2', ['sh', '-c', 'curl -s http://127.0.0.1:9450/metrics'])).stdout;
    assert.match(metrics, /^croft_notifications_sent_total\{sink="webhook"\} [1-9]\d*$/m);
    assert.match(metrics, /^croft_notifications_failed_total\{sink="webhook"\} 0$/m);
    assert.match(metrics, /^croft_notifications_dropped_total\{sink="exec"\} 0$/m);
    console.log(`# webhook received ${all.length} events (n1 ${all.filter((e) => e.node === 'n1').length}, n2 ${all.filter((e) => e.node === 'n2').length}), each node's in order; test ${Date.now() - t0} ms`);
  });
});
