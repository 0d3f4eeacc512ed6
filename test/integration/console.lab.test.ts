// The web console in a real headless Chromium (Debian's, driven by playwright-core over a pipe; the
// browser runs in the lab's client namespace, as a user's laptop on the LAN) against a 2-node lab
// with an nginx farm (web) and a mirror (mirror-ack): a viewer's actions are refused; an operator
// makes n1 PRIM and swaps the mirror from the console and sees both nodes change role; a crash of
// n2 visibly moves its buckets to n1 on the map and is a failover with its cause in the timeline;
// n2's return is a reintegration whose progress bar moves and finishes; the log tail is live; a
// command without credential or from a foreign Origin is refused by the lab's daemon. The API runs
// over TLS (a self-signed certificate for both nodes' addresses): the session cookie is Secure, and
// each node's console reads the other's events and connections. Each view is
// written as a screenshot under test-output/console/ (CROFT_CONSOLE_DOCS=1: also docs/console-*.png,
// what scripts/console-screenshots.sh does).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { bucketOf } from '../../farm/hash-input.js';
import { Lab } from '../../top/lab/index.js';
import { LAB_API_PORT } from '../../top/lab/labconfig.js';
import { nodeApi, waitFor } from '../helpers/cluster.js';
import { ACK_DIR, ACK_MODULE, ackConfig, mirrorStatus, waitStates } from '../helpers/mirror-lab.js';
import { repoRoot } from '../helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(repoRoot, 'test-output', 'console');
const DOCS = process.env.CROFT_CONSOLE_DOCS === '1' ? path.join(repoRoot, 'docs') : null;
const USERS = { viewer: ['vera', 'viewer-pass-0123'], operator: ['otto', 'operator-pass-0123'] } as const;
/** The reintegration is capped so that it lasts a few seconds: long enough to watch its bar move. */
const RESYNC_CAP = 8 * 1024 * 1024;
const DIRTY_MIB = 40;

/**
 * page.goto, again when Chromium reports ERR_NETWORK_CHANGED: it watches its namespace's addresses,
 * and right after the lab is built the client's IPv6 link-local addresses are still settling.
 */
async function visit(page: Page, target: string): Promise<Awaited<ReturnType<Page['goto']>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.goto(target);
    } catch (e) {
      if (attempt >= 5 || !/ERR_NETWORK_CHANGED/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

async function shot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `console-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (DOCS) fs.copyFileSync(file, path.join(DOCS, `console-${name}.png`));
}

describe('web console in a headless Chromium against a lab', { timeout: 180_000 }, () => {
  let lab: Lab | undefined;
  let browser: Browser | undefined;
  let config: string;
  let url: string;
  let wrapper: string;
  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh does it)`);
    // mirror-ack (a writer on the PRIM) and the shipped nginx-farm as `web`, on both nodes.
    config = ackConfig(`zone_bytes: 1048576\nresync_max_bytes_per_s: ${RESYNC_CAP}\n`);
    const web = path.join(config, 'modules', 'web');
    fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), web, { recursive: true });
    const yaml = path.join(web, 'module.yaml');
    fs.writeFileSync(yaml, fs.readFileSync(yaml, 'utf8').replace(/^# seed: .*$/m, 'seed: 1'));
    lab = await Lab.up({ name: `cw${process.pid % 100000}`, nodes: 2, clients: 4, config, intervalMs: 100, timeoutMs: 500, daemons: false });
    // The console's users, beside the generated token: a viewer and an operator; and TLS, with one
    // self-signed certificate naming both nodes' addresses (the lab's config is every node's /etc/croft).
    const cluster = path.join(lab.configDir, 'cluster.yaml');
    const doc = parse(fs.readFileSync(cluster, 'utf8')) as { api: Record<string, unknown> };
    doc.api.users = Object.entries(USERS).map(([role, [name, password]]) => ({ name, password, role }));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=croft-lab', '-addext', `subjectAltName=IP:${lab.nodeAddress('n1')},IP:${lab.nodeAddress('n2')}`,
      '-keyout', path.join(lab.configDir, 'tls.key'), '-out', path.join(lab.configDir, 'tls.crt')], { stdio: 'ignore' });
    fs.chmodSync(path.join(lab.configDir, 'tls.key'), 0o600);
    doc.api.tls = { cert: 'tls.crt', key: 'tls.key' };
    fs.writeFileSync(cluster, stringify(doc), { mode: 0o600 });
    await lab.start('n1');
    await lab.start('n2');
    url = `https://${lab.nodeAddress('n1')}:${LAB_API_PORT}/`;
    // The client's addresses settled first (IPv6 link-local ones leave "tentative" after DAD):
    // Chromium drops what is in flight when its namespace's addresses change.
    await waitFor('no tentative address in the client', async () => (await lab!.exec('client', ['ip', '-o', 'addr', 'show', 'tentative'])).stdout.trim() === '', 10_000, 100);
    // Chromium in the client's network namespace; playwright talks to it over a pipe (fds 3 and 4,
    // which nsenter passes on), so no debugging port has to cross namespaces.
    wrapper = path.join(lab.stateDir, 'chromium-in-client');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${lab.enterArgv('client', [CHROMIUM]).map((a) => `'${a}'`).join(' ')} "$@"\n`, { mode: 0o755 });
    browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox', '--no-proxy-server', '--disable-gpu'], timeout: 30_000 });
    await waitFor('the API answers on n1 and n2', async () => {
      try {
        return (await nodeApi(lab!, 'n1', 'GET', '/api/v1/status')).status === 200 && (await nodeApi(lab!, 'n2', 'GET', '/api/v1/status')).status === 200;
      } catch {
        return false; // its socket is not there yet
      }
    }, 20_000);
  });
  afterAll(async () => {
    await browser?.close().catch(() => {});
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  async function loggedIn(role: keyof typeof USERS, viewport = { width: 1366, height: 768 }): Promise<{ ctx: BrowserContext; page: Page }> {
    // The lab's certificate is its own: the browser is told to accept it (as a user would, once).
    const ctx = await browser!.newContext({ viewport, ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    page.setDefaultTimeout(20_000);
    const r = await visit(page, url);
    assert.equal(r?.status(), 401, 'without a session, the login page');
    await page.fill('#login input[name=user]', USERS[role][0]);
    await page.fill('#login input[name=password]', USERS[role][1]);
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#live')?.textContent === '● live');
    assert.equal(await page.textContent('#who'), `${USERS[role][0]} (${role})`);
    return { ctx, page };
  }

  /** Clicks an action's button, checks the confirmation's words, confirms, returns the result shown. */
  async function act(page: Page, action: string, module: string, says: RegExp): Promise<string> {
    await page.click(`#content button[data-act="${action}"][data-module="${module}"]`);
    await page.waitForSelector('#confirm[open]');
    const text = (await page.textContent('#confirm-text')) ?? '';
    assert.match(text, says);
    // The result of this action, not of the one before: emptied, then filled with the API's answer.
    await page.$eval('#result', (el) => { el.textContent = ''; });
    await page.click('#confirm-yes');
    await page.waitForFunction(() => { const t = document.querySelector('#result')?.textContent ?? ''; return t !== '' && !t.endsWith('sent…'); });
    return (await page.textContent('#result')) ?? '';
  }

  const stateIn = (page: Page, node: string) => page.textContent(`#content .card[data-node="${node}"] .state`);

  test('a viewer sees the cluster live, and every action is refused', async () => {
    const { ctx, page } = await loggedIn('viewer');
    // Nodes, and every module on every node, as the stream brings them.
    await page.waitForFunction(() => document.querySelectorAll('#nodes tr[data-node] .s.UP').length === 2);
    await page.waitForFunction(() => ['n1', 'n2'].every((n) => document.querySelector(`#modules tr[data-module="web"] td[data-node="${n}"]`)?.textContent === 'UP'));
    await page.waitForFunction(() => document.querySelector('#modules tr[data-module="mirror-ack"] td[data-node="n2"]')?.textContent === 'WAIT');
    assert.match((await page.textContent('#nodes tr[data-node="n2"]')) ?? '', /lan0: \d+ ms ago/);
    const result = await act(page, 'prim', ACK_MODULE, /n1 becomes the primary of mirror-ack/);
    assert.match(result, /refused \(403 CROFT_ERR_API_ROLE\).*role is viewer/);
    await shot(page, 'viewer-refused');
    assert.equal((await mirrorStatus(lab!, 'n1'))?.state, 'WAIT', 'nothing changed');
    await ctx.close();
  });

  test('an operator makes n1 PRIM, then swaps from the console: both nodes change role', async () => {
    const { ctx, page } = await loggedIn('operator');
    await visit(page, `${url}#/mirror/${ACK_MODULE}`);
    await page.waitForSelector('#content .card[data-node="n2"]');
    assert.match(await act(page, 'prim', ACK_MODULE, /n1 becomes the primary/), /prim mirror-ack on n1: accepted/);
    await page.waitForFunction(() => document.querySelector('#content .card[data-node="n1"] .state')?.textContent === 'PRIM'
      && document.querySelector('#content .card[data-node="n2"] .state')?.textContent === 'SECOND', undefined, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector('#link')?.textContent?.startsWith('connected'));
    await shot(page, 'mirror');
    const t0 = Date.now();
    assert.match(await act(page, 'swap', ACK_MODULE, /^swap moves mirror-ack to n2: the application stops on n1 and starts on n2.*clients reconnect/), /swap mirror-ack on n1: accepted/);
    await page.waitForFunction(() => document.querySelector('#content .card[data-node="n1"] .state')?.textContent === 'SECOND'
      && document.querySelector('#content .card[data-node="n2"] .state')?.textContent === 'PRIM', undefined, { timeout: 30_000 });
    console.log(`# swap from the console: both roles changed on the page in ${Date.now() - t0} ms`);
    assert.equal(await stateIn(page, 'n1'), 'SECOND');
    await waitStates(lab!, { n1: 'SECOND', n2: 'PRIM' }, 10_000);
    await ctx.close();
  });

  test('a command without credential, or with the session from a foreign Origin, is refused by the daemon', async () => {
    const { ctx } = await loggedIn('operator');
    const cookie = (await ctx.cookies()).find((c) => c.name === 'croft_session');
    assert.ok(cookie && cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict', `the session cookie: ${JSON.stringify(cookie)}`);
    const curl = async (headers: string[]) => {
      const r = await lab!.exec('client', ['curl', '-sk', '-X', 'POST', ...headers.flatMap((h) => ['-H', h]), `${url}api/v1/modules/${ACK_MODULE}/swap`]);
      return JSON.parse(r.stdout) as { error: string; message: string };
    };
    assert.equal((await curl([`Origin: ${url.slice(0, -1)}`])).error, 'CROFT_ERR_API');
    const foreign = await curl([`Cookie: croft_session=${cookie!.value}`, 'Origin: http://evil.example']);
    assert.equal(foreign.error, 'CROFT_ERR_API_ORIGIN');
    const noOrigin = await curl([`Cookie: croft_session=${cookie!.value}`]);
    assert.equal(noOrigin.error, 'CROFT_ERR_API_ORIGIN');
    // Nothing changed.
    await waitStates(lab!, { n1: 'SECOND', n2: 'PRIM' }, 2_000);
    await ctx.close();
  });

  test('the farm map: a crash of n2 moves its buckets to n1 on the page; the failover is in the timeline with its cause', async () => {
    const { ctx, page } = await loggedIn('operator');
    await visit(page, `${url}#/farm/web`);
    await page.waitForFunction(() => document.querySelectorAll('#bucket-map i[data-owner="n2"]').length > 0
      && document.querySelectorAll('#bucket-map i[data-owner="n1"]').length > 0);
    const owners = await page.$$eval('#bucket-map i', (is) => is.map((i) => i.getAttribute('data-owner')));
    assert.equal(owners.length, 1024);
    // n2's connections, read by n1 from n2's API (over TLS, with the cluster's token).
    await page.waitForFunction(() => /^\d+$/.test(document.querySelector('#farm-load tr[data-node="n2"] td:last-child')?.textContent ?? ''));
    // Who serves a client of n2: the box names n2, as the kernel's hash does.
    const client = lab!.clientAddresses().find((a) => owners[bucketOf('source-ip', 1024, 1, a)] === 'n2')
      ?? lab!.clientAddresses()[0]!;
    await page.fill('#who-form input[name=client]', client);
    await page.click('#who-form button[type=submit]');
    await page.waitForSelector('#who-out .who-node');
    assert.equal(await page.textContent('#who-out .who-node'), owners[bucketOf('source-ip', 1024, 1, client)]);
    await page.waitForSelector('#bucket-map i.hit');
    await shot(page, 'farm');
    // Maintenance on and off from the console.
    assert.match(await act(page, 'maintenance-on', 'web', /^maintenance of web on n1: its checkers stop acting/), /maintenance-on web on n1: done/);
    await page.waitForSelector('#content button[data-act="maintenance-off"][data-module="web"]');
    assert.ok((await nodeApi<{ maintenance: { modules: Record<string, unknown> } }>(lab!, 'n1', 'GET', '/api/v1/maintenance')).body.maintenance.modules.web);
    assert.match(await act(page, 'maintenance-off', 'web', /checkers act again/), /maintenance-off web on n1: done/);
    await page.waitForSelector('#content button[data-act="maintenance-on"][data-module="web"]');
    const t0 = Date.now();
    await lab!.crash('n2');
    await page.waitForFunction(() => document.querySelectorAll('#bucket-map i[data-owner="n2"]').length === 0
      && document.querySelectorAll('#bucket-map i[data-owner="n1"]').length === 1024, undefined, { timeout: 15_000 });
    console.log(`# lab crash n2 -> every bucket n1's on the console's map in ${Date.now() - t0} ms`);
    assert.match((await page.textContent('#farm-load tr[data-node="n1"]')) ?? '', /1024100\.0%/);
    await page.click('#who-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#who-out .who-node')?.textContent === 'n1');
    await shot(page, 'farm-after-failover');

    // The mirror's failover (n1 SECOND -> ALONE) in the timeline, with its cause.
    await visit(page, `${url}#/events`);
    await page.waitForSelector('#f-module');
    await page.selectOption('#f-module', ACK_MODULE);
    await page.waitForSelector('#ev-table tr[data-kind="failover"]', { timeout: 15_000 });
    const row = (await page.textContent('#ev-table tr[data-kind="failover"]')) ?? '';
    assert.match(row, /n1.*mirror-ack.*failover.*SECOND → ALONE/);
    const cause = (await page.textContent('#ev-table tr[data-kind="failover"] .cause')) ?? '';
    assert.ok(cause.length > 5, `the failover's cause is shown: ${cause}`);
    console.log(`# timeline: ${row}`);
    // n2's own events are in n1's timeline too (read from n2's API while it was up).
    await page.selectOption('#f-node', 'n2');
    await page.waitForSelector('#ev-table tr[data-module="mirror-ack"]');
    assert.match((await page.textContent('#ev-table')) ?? '', /n2mirror-ack(state|reintegration_done)/);
    await page.selectOption('#f-node', '');
    // Script runs with their output are there too (start_prim printed its line).
    await page.selectOption('#f-kind', 'script');
    await page.waitForSelector('#ev-table tr[data-kind="script"] pre.out');
    assert.match((await page.textContent('#ev-table tr[data-kind="script"]')) ?? '', /writer started on n\d/);
    await page.selectOption('#f-kind', '');
    await shot(page, 'events');
    await ctx.close();
  });

  test('n2 returns: the reintegration\'s progress bar moves and finishes; the log tail is live', async () => {
    const l = lab!;
    await waitStates(l, { n1: 'ALONE' }, 15_000);
    const dd = await l.exec('n1', ['dd', 'if=/dev/urandom', `of=${ACK_DIR}/big.bin`, 'bs=1M', `count=${DIRTY_MIB}`, 'conv=fsync'], { timeoutMs: 60_000 });
    assert.equal(dd.code, 0, dd.stderr);
    const { ctx, page } = await loggedIn('operator');
    await visit(page, `${url}#/mirror/${ACK_MODULE}`);
    await page.waitForFunction(() => /MiB/.test(document.querySelector('#dirty')?.textContent ?? ''));
    const t0 = Date.now();
    await l.start('n2');
    await page.waitForSelector('#reint-bar', { timeout: 30_000 });
    const samples: number[] = [];
    await waitFor('the bar moved', async () => {
      const v = await page.$eval('#reint-bar', (p) => (p as HTMLProgressElement).value).catch(() => null);
      if (v !== null) samples.push(v);
      return samples.length >= 2 && samples.at(-1)! > samples[0]! && samples.at(-1)! > 0;
    }, 20_000, 200);
    await shot(page, 'reintegration');
    console.log(`# reintegration of ${DIRTY_MIB} MiB at ${RESYNC_CAP / 1048576} MiB/s on the console's bar: ${samples.join(' -> ')} %`);
    await page.waitForSelector('#reint-last', { timeout: 60_000 });
    await page.waitForFunction(() => document.querySelector('#content .card[data-node="n1"] .state')?.textContent === 'PRIM'
      && document.querySelector('#content .card[data-node="n2"] .state')?.textContent === 'SECOND', undefined, { timeout: 30_000 });
    assert.equal(await page.$('#reint-bar'), null, 'the bar is gone once done');
    assert.match((await page.textContent('#reint-last')) ?? '', /dirty zones, [\d.]+ MiB copied/);
    console.log(`# n2 start -> reintegration done on the page in ${Date.now() - t0} ms`);
    // Verify from the console, on the PRIM: both sides identical after the reintegration.
    assert.match(await act(page, 'verify', ACK_MODULE, /every file on n1 and n2 is compared by checksum/), /verify mirror-ack on n1: done — identical/);
    await page.waitForFunction(() => /^identical/.test(document.querySelector('#verify-last')?.textContent ?? ''));
    await shot(page, 'mirror-after-reintegration');

    await visit(page, `${url}#/log`);
    await page.waitForFunction(() => /module state change/.test(document.querySelector('#log')?.textContent ?? ''));
    const before = ((await page.textContent('#log')) ?? '').split('\n').length;
    // A new line in n1's log (a maintenance change is logged) arrives without a reload.
    assert.equal((await l.exec('n1', ['croft', 'maintenance', 'on', 'web'])).code, 0);
    await page.waitForFunction((n) => (document.querySelector('#log')?.textContent ?? '').split('\n').length > n, before);
    assert.equal((await l.exec('n1', ['croft', 'maintenance', 'off', 'web'])).code, 0);
    await shot(page, 'log');
    await ctx.close();

    // The cluster view on a phone's screen.
    const phone = await loggedIn('viewer', { width: 390, height: 844 });
    await phone.page.waitForFunction(() => document.querySelectorAll('#nodes tr[data-node] .s.UP').length === 2);
    await shot(phone.page, 'phone');
    await phone.page.setViewportSize({ width: 1366, height: 768 });
    await shot(phone.page, 'cluster');
    await phone.ctx.close();
  });
});
