// The last test of the whole-container and whole-VM mirror modules (mirror-podman.lab,
// mirror-kvm.lab): `croft swap` (stop_prim on the PRIM, start_prim on the other node: the
// application moves with its data, nothing of it left on the node it left), then a crash of the
// application alone on the new PRIM (its main process SIGKILLed): the module's checker fails and
// croft restarts it (stop_prim, start_prim) on the same node. The start of the swap is slow (a VM
// boots; a container is slowed down by slowStart), so the checker fails while it runs, and the crash
// comes right after it: failures seen during a start must not hide a crash after it (they did:
// the checker's health stayed `failed`, no change, no restart). Figures on '# ' lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { Lab } from '../../top/lab/index.js';
import { pidNsFile } from '../../top/lab/pidns.js';
import { nsInode } from '../../top/lab/procs.js';
import { daemonLog, firstEventAfter, waitFor, type LogLine } from './cluster.js';
import { assertContainsAll } from '../../top/lab/committer.js';
import { waitStates } from './mirror-lab.js';

/** Host pids of the processes whose executable ends with `exe` and whose argv holds `arg`. */
export function hostPids(exe: string, arg: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (!fs.readlinkSync(`/proc/${e}/exe`).endsWith(exe)) continue;
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(arg)) out.push(Number(e));
    } catch { /* gone */ }
  }
  return out;
}

/** The inode of `pid`'s pid namespace (undefined once it is gone). */
export function pidNs(pid: number): number | undefined {
  try {
    return Number(/\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/pid`))![1]);
  } catch {
    return undefined;
  }
}

export interface WholeApp {
  module: string;
  /** The application answers through the VIP. */
  answers(lab: Lab): Promise<boolean>;
  rowsOn(lab: Lab, node: string): Promise<number[]>;
  /** Host pids of the application's processes on the machine (any node). */
  hostPids(): number[];
  /** SIGKILLs the application's main process on the node (a crash of the application alone). */
  crash(lab: Lab, node: string): Promise<void>;
  /**
   * Makes start_prim take `seconds` longer (null: back to normal), so that the checker sees the
   * application down while it starts (a VM's boot does that by itself).
   */
  slowStart?(lab: Lab, seconds: number | null): void;
}

/** The application's processes all belong to `node` (and there is at least one). */
export function assertRunsOnlyOn(lab: Lab, app: WholeApp, node: string): void {
  const ns = nsInode(pidNsFile(lab.stateDir, node));
  const pids = app.hostPids();
  assert.ok(pids.length > 0, `${app.module} runs on ${node}`);
  for (const p of pids) assert.equal(pidNs(p), ns, `${app.module}'s process ${p} is ${node}'s`);
}

export function swapAndCheckerRestart(app: WholeApp): { name: string; run(lab: Lab, prim: string, second: string, committed: number[], attempted: number): Promise<void> } {
  const { module } = app;
  return {
    name: 'croft swap moves it with its data (stop_prim, start_prim); a crash of it alone: the checker restarts it',
    async run(lab, prim, second, committed, attempted) {
      app.slowStart?.(lab, 5);
      const t0 = Date.now();
      const r = await lab.exec(prim, ['croft', 'swap', module], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, `croft swap on ${prim}: ${r.stdout}${r.stderr}`);
      await waitStates(lab, { [prim]: 'SECOND', [second]: 'PRIM' }, 90_000, module);
      await waitFor(`${module} answers through the VIP after the swap`, () => app.answers(lab), 90_000, 200);
      const swapMs = Date.now() - t0;
      // start_prim's exit (logged once it saw the application answer) is in the log before what follows.
      await waitFor(`start_prim done on ${second}`, () => firstEventAfter(lab, second, t0, (l) => l.module === module && l.script === 'start_prim' && l.exitCode === 0) !== null, 10_000, 50);
      assertRunsOnlyOn(lab, app, second);
      const stopped = firstEventAfter(lab, prim, t0, (l) => l.module === module && l.script === 'stop_prim' && l.exitCode === 0);
      assert.ok(stopped !== null, `stop_prim ran (exit 0) on ${prim}`);
      assertContainsAll(await app.rowsOn(lab, second), committed, attempted, `${second} after croft swap`);
      console.log(`# ${module}: croft swap on ${prim} -> answering through the VIP from ${second} in ${swapMs} ms (stop_prim done on ${prim} at ${stopped - t0} ms); all ${committed.length} rows there`);

      // The replication link stayed up from the swap on: the new PRIM idles while its start_prim
      // runs (nothing written), and its SECOND took the live stream of a 0-byte resync for none
      // and closed it after its grace (2 heartbeat timeouts), then again after every resync.
      const t1 = Date.now();
      const during = (n: string, match: (l: LogLine) => boolean) =>
        daemonLog(lab, n).filter((l) => l.module === module && Date.parse(l.time) >= t0 && Date.parse(l.time) < t1 && match(l)).map((l) => `${l.time} ${String(l.msg)}`);
      assert.deepEqual(during(second, (l) => l.event === 'mirror_link_lost'), [], `the link to ${prim} lost after the swap (${t1 - t0} ms watched)`);
      assert.deepEqual(during(prim, (l) => l.event === 'module_state' && l.from === 'SECOND'), [], `${prim} left SECOND after the swap`);
      await app.crash(lab, second);
      app.slowStart?.(lab, null);
      const at = (script: string, since: number) => firstEventAfter(lab, second, since, (l) => l.module === module && l.script === script && l.exitCode === 0);
      // The restart: stop_prim, then start_prim, both after the crash.
      await waitFor(`the checker's restart runs stop_prim on ${second}`, () => at('stop_prim', t1) !== null, 90_000, 100);
      const stopAt = at('stop_prim', t1)!;
      await waitFor(`then start_prim on ${second}`, () => at('start_prim', stopAt) !== null, 90_000, 100);
      const startAt = at('start_prim', stopAt)!;
      await waitFor(`${module} answers through the VIP after its restart`, () => app.answers(lab), 60_000, 200);
      assertRunsOnlyOn(lab, app, second);
      assertContainsAll(await app.rowsOn(lab, second), committed, attempted, `${second} after the restart`);
      // Every start of the run worked at its first try (after kills of the node, a swap, a crash).
      for (const n of [prim, second]) {
        const failed = daemonLog(lab, n).filter((l) => l.module === module && l.script === 'start_prim' && typeof l.exitCode === 'number' && l.exitCode !== 0);
        assert.deepEqual(failed.map((l) => l.time), [], `start_prim failed on ${n}`);
      }
      console.log(`# ${module}: its main process SIGKILLed on ${second} -> the checker's restart: stop_prim done at ${stopAt - t1} ms, start_prim done at ${startAt - t1} ms, answering through the VIP at ${Date.now() - t1} ms`);
    },
  };
}
