// modules/redis-mirror in a real 2-node lab (test/helpers/mirror-app-suite.ts): Debian's Redis
// (append-only file, appendfsync always) on the FUSE mirror, a client committing numbered members
// through the VIP (test/fixtures/redis-client: `SADD committed n`, printed once Redis answered), two
// kills of the PRIM alternating nodes: every acknowledged member on the survivor, reintegration from
// the dirty log, `croft mirror verify` identical.
import assert from 'node:assert/strict';
import path from 'node:path';
import { mirrorAppSuite, type MirrorApp } from '../helpers/mirror-app-suite.js';
import { fixtures } from '../helpers/paths.js';

const MODULE = 'redis-mirror';
const VIP = '10.77.0.62'; // modules/redis-mirror/module.yaml
const SOCK = `/run/croft/${MODULE}/sock/redis.sock`; // lib.sh: the server's Unix socket on the primary

const app: MirrorApp = {
  module: MODULE,
  vip: VIP,
  tag: 'rm',
  kills: 2,
  client: {
    argv: ['node', path.join(fixtures, 'redis-client', 'client.mjs'), VIP, '6379'],
    statement: (n) => `${n}\n`,
  },
  answers: async (lab) => (await lab.exec('client', ['redis-cli', '-h', VIP, '-p', '6379', 'ping'], { timeoutMs: 5000 })).stdout.trim() === 'PONG',
  // A set needs no creation: the first SADD makes it.
  createTable: async () => undefined,
  rowsOn: async (lab, node) => {
    const r = await lab.exec(node, ['redis-cli', '-s', SOCK, 'smembers', 'committed'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `smembers on ${node}: ${r.stderr}`);
    assert.doesNotMatch(r.stdout, /ERR|LOADING/, `smembers on ${node}`);
    return r.stdout.split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
  },
  serverLog: `/var/log/croft/${MODULE}.log`,
};

// In the default mode (on-sync), then in every-change: every committed row on the survivor.
mirrorAppSuite(app);
mirrorAppSuite({ ...app, tag: 'rme', mode: 'every-change', kills: 2 });
