// modules/postgresql-mirror in a real 2-node lab (test/helpers/mirror-app-suite.ts): Debian's
// PostgreSQL on the FUSE mirror, a client committing numbered rows through the VIP with psql (one
// INSERT per transaction, autocommit), three kills of the PRIM alternating nodes: every committed
// row on the survivor, reintegration from the dirty log, `croft mirror verify` identical.
import assert from 'node:assert/strict';
import type { Lab } from '../../top/lab/index.js';
import { mirrorAppSuite, type MirrorApp } from '../helpers/mirror-app-suite.js';

const MODULE = 'postgresql-mirror';
const VIP = '10.77.0.60'; // modules/postgresql-mirror/module.yaml
const SOCK = `/run/croft/${MODULE}/sock`; // lib.sh: the server's Unix socket folder on the primary
const PG_ENV = { PGPASSWORD: 'croft', PGCONNECT_TIMEOUT: '2' };

const throughVip = (lab: Lab, sql: string) =>
  lab.exec('client', ['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', VIP, '-U', 'croft', '-d', 'croft', '-c', sql], { env: PG_ENV });

const app: MirrorApp = {
  module: MODULE,
  vip: VIP,
  tag: 'pm',
  kills: 3,
  // psql prints the row only once the server's answer is complete, which in autocommit comes after
  // the commit (PostgreSQL commits before sending CommandComplete). A lost connection ends a
  // non-interactive psql (exit 2); an error ends it too (ON_ERROR_STOP).
  client: {
    argv: ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', VIP, '-U', 'croft', '-d', 'croft'],
    env: PG_ENV,
    statement: (n) => `insert into committed (n) values (${n}) returning n;\n`,
  },
  answers: async (lab) => (await throughVip(lab, 'select 1')).stdout.trim() === '1',
  createTable: async (lab) => {
    const c = await throughVip(lab, 'create table committed (n integer primary key, at timestamptz not null default now())');
    assert.equal(c.code, 0, `create table through the VIP: ${c.stderr}`);
  },
  rowsOn: async (lab, node) => {
    const r = await lab.exec(node, ['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', SOCK, '-U', 'postgres', '-d', 'croft',
      '-c', 'select n from committed order by n'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `select on ${node}: ${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean).map(Number);
  },
  serverLog: `/var/log/croft/${MODULE}.log`,
};

// In the default mode (on-sync), then in every-change: every committed row on the survivor.
mirrorAppSuite(app);
mirrorAppSuite({ ...app, tag: 'pme', mode: 'every-change', kills: 2 });
