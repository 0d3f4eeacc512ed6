// The lab test of a database mirror module (modules/<name>-mirror): real daemons on a 2-node lab,
// the module's own scripts starting the real server on the FUSE mirror, a client in the lab's client
// namespace committing numbered rows through the VIP (test/helpers/committer.ts). `croft prim n1`,
// then the PRIM is killed (lab kill: SIGKILL of its daemon and its server) `kills` times, alternating
// nodes: every committed row must be on the survivor, the killed node must come back as SECOND by a
// reintegration from the dirty log, and `croft mirror verify` must find both sides identical.
// Figures are printed on lines starting with '# '. `mode` runs the module in that replication mode
// (appended to its module.yaml; absent: the module's own, on-sync by default).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { defaults } from '../../src/config/defaults.js';
import { Lab } from '../../top/lab/index.js';
import { firstEventAfter, sleep, stats, waitFor, type LogLine } from './cluster.js';
import { assertContainsAll, Committer, type CommitterClient } from '../../top/lab/committer.js';
import { hasVip, mirrorStatus, waitStates } from './mirror-lab.js';
import { repoRoot } from './paths.js';

export interface MirrorApp {
  /** The module folder under modules/ (its module.yaml names the VIP). */
  module: string;
  vip: string;
  /** Short, for the lab's name. */
  tag: string;
  /** What `kills` rounds the test runs. */
  kills: number;
  /** The replication mode (DESIGN.md, "Replication contracts"); absent: the module.yaml's. */
  mode?: 'every-change' | 'on-sync';
  client: CommitterClient;
  /** The server answers through the VIP (a query from the client namespace). */
  answers(lab: Lab): Promise<boolean>;
  /** Creates the table `committed` through the VIP; throws with the client's error. */
  createTable(lab: Lab): Promise<void>;
  /** The row numbers in the table, read on `node` itself (not through the VIP). */
  rowsOn(lab: Lab, node: string): Promise<number[]>;
  /** The server's log on a node, kept for a person looking into a failure. */
  serverLog: string;
  /** The bound on a failover (kill -> first commit on the other node); default 15 s. */
  maxFailoverMs?: number;
  /** A reintegration must copy at most this many bytes (the data holds more: only what changed is copied). */
  maxReintegrationBytes?: number;
  /** Run once the lab is up, before `croft prim` (an install step on the nodes). */
  setup?(lab: Lab): Promise<void>;
  /** A last test after the kills, on the final PRIM and SECOND, with the rows committed so far. */
  more?: { name: string; run(lab: Lab, prim: string, second: string, committed: number[], attempted: number): Promise<void> };
  /** More checks after each failover: `survivor` runs the application, `killed` was lab-killed. */
  afterFailover?(lab: Lab, survivor: string, killed: string): Promise<void>;
}

export function mirrorAppSuite(app: MirrorApp): void {
  const { module } = app;
  const status = (lab: Lab, node: string) => mirrorStatus(lab, node, module);
  const states = (lab: Lab, want: Record<string, string>, timeoutMs: number) => waitStates(lab, want, timeoutMs, module);
  const vipOn = (lab: Lab, node: string) => hasVip(lab, node, app.vip);

  const modeNote = app.mode ? ` (mode ${app.mode})` : '';
  describe(`${module}${modeNote}: committed rows survive the kill of the primary`, { timeout: 300_000 }, () => {
    let lab: Lab;
    let config: string;
    let client: Committer | null = null;
    let final: { prim: string; second: string; committed: number[]; attempted: number } | null = null;
    beforeAll(async () => {
      config = fs.mkdtempSync(path.join(os.tmpdir(), `croft-${app.tag}-`));
      fs.cpSync(path.join(repoRoot, 'modules', module), path.join(config, 'modules', module), { recursive: true });
      if (app.mode) fs.appendFileSync(path.join(config, 'modules', module, 'module.yaml'), `mode: ${app.mode}\n`);
      lab = await Lab.up({ name: `${app.tag}${process.pid % 100000}`, nodes: 2, clients: 1, config });
      await app.setup?.(lab);
    });
    afterAll(async () => {
      await client?.stop().catch(() => undefined);
      client?.kill();
      if (lab) {
        for (const n of ['n1', 'n2']) {
          const dir = path.join(os.tmpdir(), `croft-${app.tag}-lab-${n}`);
          fs.rmSync(dir, { recursive: true, force: true });
          fs.mkdirSync(dir, { recursive: true });
          // Logs of the last run for a person looking into a failure (daemon and server).
          const daemonLog = path.join(lab.stateDir, 'nodes', n, 'daemon.log');
          if (fs.existsSync(daemonLog)) fs.cpSync(daemonLog, path.join(dir, 'daemon.log'));
          await lab.exec(n, ['cp', app.serverLog, path.join(dir, 'server.log')]).catch(() => undefined);
        }
      }
      await lab?.down();
      fs.rmSync(config, { recursive: true, force: true });
    });

    test('croft prim n1: PRIM/SECOND, the server on n1 behind the VIP', async () => {
      await states(lab, { n1: 'WAIT', n2: 'WAIT' }, 20_000);
      const t0 = Date.now();
      const r = await lab.exec('n1', ['croft', 'prim', module]);
      assert.equal(r.code, 0, r.stderr);
      await states(lab, { n1: 'PRIM', n2: 'SECOND' }, 60_000);
      const mirroredMs = Date.now() - t0;
      // The mirror's state does not wait for start_prim (a first start creates the database on the
      // mirror): the server is ready when it answers through the VIP.
      await waitFor('the server answers through the VIP', () => app.answers(lab), 120_000, 200);
      console.log(`# ${module}: croft prim n1 -> PRIM/SECOND in ${mirroredMs} ms; the server answers through the VIP after ${Date.now() - t0} ms (its first start on the mirror included)`);
      assert.ok(await vipOn(lab, 'n1'), 'the VIP is on n1');
      assert.ok(!(await vipOn(lab, 'n2')), 'and not on n2');
      // The module's `xattrs` reaches the mount the daemon made: with `xattrs: false` every xattr
      // call on the replicated directory is refused (EOPNOTSUPP, which Python names ENOTSUP).
      const yaml = fs.readFileSync(path.join(config, 'modules', module, 'module.yaml'), 'utf8');
      const dir = /^dirs: \[([^\],]+)/m.exec(yaml)?.[1]?.trim();
      assert.ok(dir, 'the module names its first replicated directory');
      const probe = await lab.exec('n1', ['/usr/bin/python3', '-c',
        'import os, sys, errno\ntry:\n  os.listxattr(sys.argv[1]); print("ok")\nexcept OSError as e:\n  print(errno.errorcode[e.errno])', dir]);
      assert.equal(probe.stdout.trim(), /^xattrs: false/m.test(yaml) ? 'ENOTSUP' : 'ok', `listxattr on ${dir} on n1: ${probe.stderr}`);
      await app.createTable(lab);
    });

    test(`${app.kills} kills of the PRIM under commits: no committed row lost, reintegration, verify`, async () => {
      client = new Committer(lab, app.client);
      client.start();
      const failoverMs: number[] = [];
      let prim = 'n1';
      let second = 'n2';
      for (let round = 1; round <= app.kills; round++) {
        const roundStartMs = Date.now();
        const before = client.acks.length;
        await waitFor('commits before the kill', () => client!.ok() && client!.acks.length >= before + 100, 20_000, 20);
        await sleep(500);
        const killAt = Date.now();
        await lab.kill(prim);
        const killedAt = Date.now();
        const committedBefore = client.acks.filter((a) => a.atMs >= roundStartMs && a.atMs <= killAt).length;
        // The first commit of a session opened after the kill returned: it cannot be on the dead node.
        await waitFor(`a commit on ${second} after the kill of ${prim}`, () => client!.ok() && client!.openedAfter(killedAt).length > 0, 60_000, 10);
        const first = client.openedAfter(killedAt)[0]!;
        const ms = first.atMs - killAt;
        failoverMs.push(ms);
        assert.equal((await status(lab, second))?.state, 'ALONE', `${second} runs ALONE`);
        assert.ok(await vipOn(lab, second), `the VIP is on ${second}`);
        await app.afterFailover?.(lab, second, prim);
        await sleep(1000);
        await client.pause();
        const committed = client.committed;
        const table = await app.rowsOn(lab, second);
        client.resume();
        assertContainsAll(table, committed, client.attempted, `${second} after the kill of ${prim}`);
        const afterKill = client.acks.filter((a) => a.atMs > killAt).length;
        // Where the time went, from the survivor's log (ms after the kill).
        const at = (match: (l: LogLine) => boolean) => {
          const t = firstEventAfter(lab, second, killAt, (l) => l.module === module && match(l));
          return t === null ? '?' : String(t - killAt);
        };
        console.log(`# ${module} round ${round}: lab kill ${prim} (PRIM) -> first commit through the VIP on ${second} in ${ms} ms `
          + `(${second} ALONE at ${at((l) => l.to === 'ALONE')}, VIP at ${at((l) => l.event === 'mirror_vip' && l.held === true)}, `
          + `start_prim done at ${at((l) => l.script === 'start_prim' && l.exitCode === 0)}); `
          + `${committedBefore} rows committed in this round before the kill, ${afterKill} after; ${second} holds all ${committed.length} committed rows `
          + `(${table.length} in the table, ${client.attempted} sent)`);

        const dirtyBefore = (await status(lab, second))?.dirtyBytes ?? null;
        const t1 = Date.now();
        await lab.start(prim);
        await states(lab, { [prim]: 'SECOND', [second]: 'PRIM' }, 60_000);
        const last = (await status(lab, second))?.lastReintegration;
        assert.ok(last, `${second} reports its reintegration`);
        console.log(`# ${module} round ${round}: ${prim} restarted -> SECOND in ${Date.now() - t1} ms; reintegration ${last.full ? 'FULL' : 'from the dirty log'}: `
          + `${last.bytesCopied} bytes copied for ${last.dirtyBytesAtStart} dirty bytes in ${last.dirtyEntriesAtStart} entries `
          + `(${dirtyBefore} dirty bytes shown before the restart), ${last.durationMs} ms`);
        assert.equal(last.full, false, 'a trusted dirty log: only what changed is copied');
        if (app.maxReintegrationBytes !== undefined) {
          assert.ok(last.bytesCopied <= app.maxReintegrationBytes, `reintegration copied ${last.bytesCopied} bytes, more than ${app.maxReintegrationBytes}`);
        }
        // lab kill leaves the node's kernel (its namespaces) up, so the VIP it held stayed on its
        // interface: the restarted daemon removes it before anything else (both nodes would answer
        // ARP for it otherwise).
        assert.ok(!(await vipOn(lab, prim)), `the restarted ${prim} (SECOND) no longer holds the VIP ${app.vip}`);

        const commitsNow = client.acks.length;
        await waitFor('commits go on while mirrored again', () => client!.ok() && client!.acks.length >= commitsNow + 50, 20_000, 20);
        await client.pause();
        try {
          assertContainsAll(await app.rowsOn(lab, second), client.committed, client.attempted, `${second} (PRIM) after the reintegration`);
          const v = await lab.exec(second, ['croft', 'mirror', 'verify', module], { timeoutMs: 60_000 });
          assert.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
          assert.match(v.stdout, /identical/);
          console.log(`# ${module} round ${round}: ${v.stdout.trim()}`);
        } finally {
          client.resume();
        }
        [prim, second] = [second, prim];
      }
      await client.stop();
      const s = stats(failoverMs);
      assert.equal((await status(lab, prim))?.mode, app.mode ?? defaults.mirror.mode, 'the mode the module ran in');
      console.log(`# ${module}${modeNote} failover (kill of the PRIM -> first commit through the VIP on the other node), ${failoverMs.length} runs: `
        + `min ${s.min} ms, median ${s.median} ms, max ${s.max} ms (${failoverMs.join(', ')}; heartbeat timeout 500 ms)`);
      console.log(`# ${module}${modeNote}: ${client.acks.length} rows committed in all, ${client.attempted} sent, ${client.connections} sessions; failed statements: ${client.failures.length}`);
      for (const ms of failoverMs) assert.ok(ms < (app.maxFailoverMs ?? 15_000), `failover within seconds (${ms} ms)`);
      assertContainsAll(await app.rowsOn(lab, prim), client.committed, client.attempted, `${prim} at the end`);
      final = { prim, second, committed: client.committed, attempted: client.attempted };
    });

    if (app.more) {
      const more = app.more;
      test(more.name, async () => {
        assert.ok(final, 'the kills test ran');
        await more.run(lab, final.prim, final.second, final.committed, final.attempted);
      });
    }
  });
}
