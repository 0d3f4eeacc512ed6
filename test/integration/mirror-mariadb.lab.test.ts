// modules/mariadb-mirror in a real 2-node lab (test/helpers/mirror-app-suite.ts): Debian's MariaDB
// (InnoDB, flush at every commit) on the FUSE mirror, a client committing numbered rows through the
// VIP with the mariadb client in batch mode (an INSERT, then a SELECT of its number: printed only
// after the commit), two kills of the PRIM alternating nodes: every committed row on the survivor,
// reintegration from the dirty log, `croft mirror verify` identical.
import assert from 'node:assert/strict';
import type { Lab } from '../../top/lab/index.js';
import { mirrorAppSuite, type MirrorApp } from '../helpers/mirror-app-suite.js';

const MODULE = 'mariadb-mirror';
const VIP = '10.77.0.61'; // modules/mariadb-mirror/module.yaml
const SOCK = `/run/croft/${MODULE}/sock/mysqld.sock`; // lib.sh: the server's Unix socket on the primary
// The application user lib.sh creates (APP_USER, APP_PASSWORD, APP_DB).
const CLIENT = ['mariadb', '--no-defaults', '-N', '-B', '--connect-timeout=2', '-h', VIP, '-u', 'croft', '-pcroft', 'croft'];

const throughVip = (lab: Lab, sql: string) => lab.exec('client', [...CLIENT, '-e', sql], { timeoutMs: 10_000 });

const app: MirrorApp = {
  module: MODULE,
  vip: VIP,
  tag: 'mm',
  kills: 2,
  // -n: output flushed after each statement; batch mode stops at the first error, and
  // --skip-reconnect makes a lost connection end it too.
  client: {
    argv: [...CLIENT.slice(0, 2), '-n', '--skip-reconnect', ...CLIENT.slice(2)],
    statement: (n) => `insert into committed (n) values (${n}); select ${n};\n`,
  },
  answers: async (lab) => (await throughVip(lab, 'select 1')).stdout.trim() === '1',
  createTable: async (lab) => {
    const c = await throughVip(lab, 'create table committed (n integer primary key, at timestamp not null default current_timestamp) engine=InnoDB');
    assert.equal(c.code, 0, `create table through the VIP: ${c.stderr}`);
  },
  rowsOn: async (lab, node) => {
    const r = await lab.exec(node, ['mariadb', '--no-defaults', '-N', '-B', `--socket=${SOCK}`, '-u', 'root', 'croft',
      '-e', 'select n from committed order by n'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `select on ${node}: ${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean).map(Number);
  },
  serverLog: `/var/log/croft/${MODULE}.log`,
};

// In the default mode (on-sync), then in every-change: every committed row on the survivor.
mirrorAppSuite(app);
mirrorAppSuite({ ...app, tag: 'mme', mode: 'every-change', kills: 2 });
