// A planned stop of a farm node with drain_ms, in a real 3-node lab (nginx-farm, the kernel's
// nftables): `croft stop` takes the node out of the farm at once (new clients of its buckets are
// served by the other nodes) while the downloads it serves go on to their end; the node runs
// stop_both, and reaches STOP, as soon as no connection to the VIP is left, before drain_ms.
// The control: the same downloads with drain_ms 0 are cut (nginx's graceful stop gives requests in
// progress 5 s, then the module's stop_both kills what is left). Figures on lines starting with '#'.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { bucketOf } from '../../farm/hash-input.js';
import type { FarmMapView } from '../../top/cli/farm.js';
import { Lab } from '../../top/lab/index.js';
import { sleep, waitFor } from '../helpers/cluster.js';
import { farmStatus, moduleView } from '../helpers/farm-lab.js';
import { repoRoot } from '../helpers/paths.js';

const VIP = '10.77.0.100'; // modules/nginx-farm/module.yaml
const SITE = '/run/croft/drain-site'; // private to each lab node
const SLOW_BYTES = 3_200_000;
// nginx sends it at 200 KiB/s (limit_rate: the server holds the rest, not the sockets' buffers): ~15.6 s,
// longer than the 5 s nginx-farm's stop_both gives requests in progress before it kills nginx.
const RATE = '200k';
const DOWNLOADS = 8;

/** nginx-farm with a fixed seed, a site serving who answers and a large file, and drain_ms. */
function farmConfig(drainMs: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-draintest-'));
  const web = path.join(dir, 'modules', 'web');
  fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), web, { recursive: true });
  const file = path.join(web, 'module.yaml');
  const yaml = fs.readFileSync(file, 'utf8').replace(/^# seed: .*$/m, 'seed: 1');
  fs.writeFileSync(file, `${yaml}\ndrain_ms: ${drainMs}\n`);
  fs.writeFileSync(path.join(web, 'site.conf'), `server {
    listen 0.0.0.0:80 default_server;
    server_name _;
    root ${SITE};
    location = / { default_type text/plain; try_files /who =404; }
    location = /slow.bin { limit_rate ${RATE}; }
}
`);
  return dir;
}

const moduleState = async (lab: Lab, node: string) => (await moduleView(lab, node))?.state;

interface Download { src: string; code: number; bytes: number; endedAtMs: number }

/** curl from `src` in the client namespace; resolves when it ends (complete or cut). */
async function download(lab: Lab, src: string): Promise<Download> {
  const r = await lab.exec('client', ['curl', '-s', '-o', '/dev/null', '--interface', src, '--max-time', '40',
    '-w', '%{http_code} %{size_download}', `http://${VIP}/slow.bin`], { timeoutMs: 60_000 });
  const [code, bytes] = r.stdout.trim().split(' ').map(Number);
  return { src, code: r.code === 0 ? code! : -r.code, bytes: bytes ?? 0, endedAtMs: Date.now() };
}

async function who(lab: Lab, src: string): Promise<string> {
  const r = await lab.exec('client', ['curl', '-s', '--interface', src, '--max-time', '3', `http://${VIP}/`], { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.trim() : `curl exit ${r.code}`;
}

interface Outcome { downloads: Download[]; stoppedAfterMs: number; lastEndAfterMs: number; answeredBy: string[] }

/** A lab with drain_ms, 8 slow downloads served by n1, `croft stop web` on n1 a second into them. */
function plannedStop(drainMs: number, tag: string, check: (o: Outcome) => void): void {
  describe(`farm: croft stop of a node with drain_ms ${drainMs} during ${DOWNLOADS} downloads`, { timeout: 180_000 }, () => {
    let lab: Lab;
    let config: string;
    beforeAll(async () => {
      config = farmConfig(drainMs);
      lab = await Lab.up({ name: `${tag}${process.pid % 100000}`, nodes: 3, clients: 100, config, intervalMs: 100, timeoutMs: 500 });
      for (const n of ['n1', 'n2', 'n3']) {
        const r = await lab.exec(n, ['sh', '-c', `mkdir -p ${SITE} && echo ${n} > ${SITE}/who && head -c ${SLOW_BYTES} /dev/urandom > ${SITE}/slow.bin && chmod -R a+rX ${SITE}`]);
        assert.equal(r.code, 0, r.stderr);
      }
    });
    afterAll(async () => {
      await lab?.down();
      fs.rmSync(config, { recursive: true, force: true });
    });

    test('the downloads in progress on the stopped node; new clients elsewhere', async () => {
      await waitFor('farm members [n1 n2 n3] everywhere', async () => {
        const all = await Promise.all(['n1', 'n2', 'n3'].map((n) => farmStatus(lab, n)));
        return all.every((f) => f?.active && JSON.stringify(f.members) === JSON.stringify(['n1', 'n2', 'n3']));
      }, 30_000, 50);
      const mapRun = await lab.exec('n2', ['croft', 'farm', 'map', 'web', '--json']);
      assert.equal(mapRun.code, 0, mapRun.stderr);
      const map = JSON.parse(mapRun.stdout) as FarmMapView;
      const ofN1 = lab.clientAddresses().filter((src) => map.map[bucketOf(map.balance, map.buckets, map.seed, src)] === 'n1');
      assert.ok(ofN1.length >= DOWNLOADS + 4, `enough clients hashed to n1 (${ofN1.length})`);
      const [downloaders, newcomers] = [ofN1.slice(0, DOWNLOADS), ofN1.slice(DOWNLOADS, DOWNLOADS + 4)];
      for (const src of newcomers) assert.equal(await who(lab, src), 'n1', `${src} is served by n1 before the stop`);

      const running = downloaders.map((src) => download(lab, src));
      await sleep(1000);
      const t0 = Date.now();
      const stop = await lab.exec('n1', ['croft', 'stop', 'web']);
      assert.equal(stop.code, 0, stop.stderr);
      // Out of the farm at once: the other nodes hold n1's buckets, and new clients of them are served there.
      await waitFor('n2 and n3 run the farm without n1', async () => {
        const all = await Promise.all(['n2', 'n3'].map((n) => farmStatus(lab, n)));
        return all.every((f) => JSON.stringify(f?.members) === JSON.stringify(['n2', 'n3']));
      }, 5_000, 20);
      const answeredBy = await Promise.all(newcomers.map((src) => who(lab, src)));
      let stoppedAfterMs = -1;
      const watchStop = waitFor('n1 in STOP', async () => (await moduleState(lab, 'n1')) === 'STOP', 60_000, 50)
        .then(() => { stoppedAfterMs = Date.now() - t0; });
      const downloads = await Promise.all(running);
      await watchStop;
      const lastEnd = Math.max(...downloads.map((d) => d.endedAtMs)) - t0;
      const complete = downloads.filter((d) => d.code === 200 && d.bytes === SLOW_BYTES).length;
      console.log(`# drain_ms ${drainMs}: ${complete}/${DOWNLOADS} downloads served by n1 complete (bytes: ${downloads.map((d) => d.bytes).join(', ')}); `
        + `the last ended ${lastEnd} ms after \`croft stop\`; n1 in STOP after ${stoppedAfterMs} ms; new clients of n1's buckets answered by [${answeredBy.join(' ')}]`);
      check({ downloads, stoppedAfterMs, lastEndAfterMs: lastEnd, answeredBy });
    });
  });
}

const DRAIN_MS = 30_000;
plannedStop(DRAIN_MS, 'dd', ({ downloads, stoppedAfterMs, lastEndAfterMs, answeredBy }) => {
  for (const d of downloads) assert.deepEqual([d.code, d.bytes], [200, SLOW_BYTES], `the download of ${d.src} finished`);
  for (const a of answeredBy) assert.match(a, /^n[23]$/, 'a new client of n1\'s buckets is served by n2 or n3 while n1 drains');
  assert.ok(stoppedAfterMs + 500 >= lastEndAfterMs, `n1 stopped after its downloads ended (${stoppedAfterMs} ms, the last ended at ${lastEndAfterMs} ms)`);
  assert.ok(stoppedAfterMs < DRAIN_MS - 5_000, `n1 stopped once no connection was left, before drain_ms (${stoppedAfterMs} ms)`);
});

plannedStop(0, 'dz', ({ downloads, answeredBy }) => {
  // The control: without a drain, stop_both runs at once and the downloads longer than nginx's
  // graceful 5 s are cut; so the test above fails where the drain is missing.
  const cut = downloads.filter((d) => !(d.code === 200 && d.bytes === SLOW_BYTES));
  assert.ok(cut.length > 0, 'without drain_ms, downloads in progress are cut by the stop');
  for (const a of answeredBy) assert.match(a, /^n[23]$/, 'new clients of n1\'s buckets go to n2 or n3');
});
