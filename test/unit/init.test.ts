// croft init and croft module add, run as a user runs them (bin/croft.js), then croft check on what
// they wrote: a configuration croft accepts, a private key, no silent overwrite, clear refusals.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { parse } from 'yaml';
import { croftBin } from '../helpers/paths.js';

function croft(...args: string[]) {
  // stdin is not a TTY here (as in a script): missing flags are a usage error, never a question.
  const r = spawnSync(process.execPath, [croftBin, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CROFT_CONFIG: '/nonexistent' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-init-'));
  fs.chmodSync(d, 0o755);
  return d;
}

const mode = (f: string) => fs.statSync(f).mode & 0o7777;
const INIT = ['--name', 'prod', '--node', 'n1=10.0.0.1,10.1.0.1', '--node', 'n2=10.0.0.2,10.1.0.2', '--node=n3=10.0.0.3,10.1.0.3', '--lan', 'lan0', '--lan', 'lan1'];

test('croft init writes a configuration croft check accepts: key 0600 of 32 random bytes, token, modes', () => {
  const root = tmp();
  const dir = path.join(root, 'croft');
  try {
    const r = croft('init', ...INIT, '--dir', dir, '--api-host', '0.0.0.0');
    assert.equal(r.code, 0, r.stderr);
    const check = croft('check', dir);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /cluster prod: 3 nodes \(n1, n2, n3\), LANs lan0, lan1/);

    const key = path.join(dir, 'cluster.key');
    assert.equal(mode(key), 0o600);
    const text = fs.readFileSync(key, 'utf8');
    assert.match(text, /^[0-9a-f]{64}\n$/, 'the key is 32 bytes, hex-encoded (the loader reads key_file as trimmed text)');
    assert.equal(Buffer.from(text.trim(), 'hex').length, 32);
    assert.notEqual(Buffer.from(text.trim(), 'hex').toString('hex'), '0'.repeat(64));

    const yamlFile = path.join(dir, 'cluster.yaml');
    assert.equal(mode(yamlFile), 0o600, 'cluster.yaml holds the API token inline: private');
    assert.equal(mode(dir), 0o755);
    const doc = parse(fs.readFileSync(yamlFile, 'utf8'));
    assert.equal(doc.key_file, 'cluster.key');
    assert.equal(doc.key, undefined);
    assert.deepEqual(doc.lans, ['lan0', 'lan1']);
    assert.deepEqual(doc.nodes.n3.addresses, ['10.0.0.3', '10.1.0.3']);
    assert.equal(doc.api.host, '0.0.0.0');
    assert.match(doc.api.tokens[0], /^[0-9a-f]{48}$/);
    // Only the two files: the staging folder is gone.
    assert.deepEqual(fs.readdirSync(dir).sort(), ['cluster.key', 'cluster.yaml']);
    // What to copy where: a scp per node (none of these addresses is this machine's).
    for (const a of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) assert.match(r.stdout, new RegExp(`scp -rp ${dir}/\\* root@${a.replace(/\./g, '\\.')}:/etc/croft/`));

    // Two runs make two different keys and tokens.
    const other = path.join(root, 'other');
    assert.equal(croft('init', ...INIT, '--dir', other).code, 0);
    assert.notEqual(fs.readFileSync(path.join(other, 'cluster.key'), 'utf8'), text);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('croft init --no-token: cluster.yaml 0644 (the key is in its own file), still valid', () => {
  const dir = tmp();
  try {
    const r = croft('init', '--name', 'c1', '--node', 'a=192.168.1.1', '--node', 'b=192.168.1.2', '--dir', dir, '--no-token');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(mode(path.join(dir, 'cluster.yaml')), 0o644);
    assert.equal(mode(path.join(dir, 'cluster.key')), 0o600);
    const doc = parse(fs.readFileSync(path.join(dir, 'cluster.yaml'), 'utf8'));
    assert.deepEqual(doc.lans, ['lan0']);
    assert.equal(doc.api, undefined);
    assert.equal(croft('check', dir).code, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('croft init refuses to overwrite an existing configuration without --force', () => {
  const dir = tmp();
  try {
    assert.equal(croft('init', ...INIT, '--dir', dir).code, 0);
    const before = fs.readFileSync(path.join(dir, 'cluster.key'), 'utf8');
    const again = croft('init', ...INIT, '--dir', dir);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exist.*not overwritten.*--force/);
    assert.equal(fs.readFileSync(path.join(dir, 'cluster.key'), 'utf8'), before, 'the key is untouched');
    const forced = croft('init', '--name', 'prod2', '--node', 'n1=10.0.0.1', '--node', 'n2=10.0.0.2', '--dir', dir, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(fs.readFileSync(path.join(dir, 'cluster.key'), 'utf8'), before);
    assert.match(croft('check', dir).stdout, /cluster prod2: 2 nodes/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('croft init: missing or bad flags are usage errors (exit 2, usage shown), nothing written', () => {
  const dir = tmp();
  try {
    const cases: [string[], RegExp][] = [
      [[], /missing --name/],
      [['--name', 'prod'], /missing --node/],
      [['--name', 'prod', '--node', 'n1=10.0.0.300'], /"10\.0\.0\.300" is not an IP address/],
      [['--name', 'prod', '--node', 'n1=10.0.0.1', '--node', 'n2=10.0.0.1'], /address 10\.0\.0\.1 is already n1's/],
      [['--name', 'prod', '--node', 'n1'], /expected <name>=<address>/],
      [['--name', 'Prod!', '--node', 'n1=10.0.0.1'], /--name "Prod!": expected lowercase/],
      [['--name', 'prod', '--node', 'n1=10.0.0.1,10.1.0.1', '--node', 'n2=10.0.0.2'], /--node n2: 1 address for 2 LANs/],
      [['--name', 'prod', '--node', 'n1=10.0.0.1', '--lan', 'a', '--lan', 'b'], /--node n1: 1 address for 2 LANs \(a, b\)/],
      [['--name', 'prod', '--node', 'any=10.0.0.1'], /reserved/],
      [['--name', 'prod', '--node', 'n1=10.0.0.1', '--api-host', 'example'], /--api-host example: expected an IP address/],
      [['--name', 'prod', '--node', 'n1=10.0.0.1', '--bogus'], /unknown option --bogus/],
    ];
    for (const [args, message] of cases) {
      const r = croft('init', ...args, '--dir', dir);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /usage: croft init --name <cluster> --node/);
    }
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.match(croft('help', 'init').stdout, /--node NAME=ADDRS/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('croft init on a terminal asks for the cluster name and the nodes the flags did not give', () => {
  const dir = tmp();
  try {
    // script(1) gives the command a pseudo-terminal; the answers are typed ahead on its input.
    const cmd = [process.execPath, croftBin, 'init', '--dir', path.join(dir, 'c'), '--no-token'].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', input: 'asked\nn1=10.0.0.1,10.1.0.1\nn2=10.0.0.2,10.1.0.2\n\n', timeout: 30_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /cluster name/);
    assert.match(r.stdout, /node 3: /);
    assert.match(r.stdout, /configuration OK: cluster asked, 2 nodes \(n1, n2\), LANs lan0, lan1/);
    assert.equal(croft('check', path.join(dir, 'c')).code, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('croft module add nginx-farm and postgresql-mirror: modes kept, --set applied, a valid configuration', () => {
  const dir = tmp();
  try {
    assert.equal(croft('init', ...INIT, '--dir', dir).code, 0);
    const web = croft('module', 'add', 'nginx-farm', 'web', '--dir', dir, '--set', 'vip=10.0.0.100', '--set', 'drain_ms=30000');
    assert.equal(web.code, 0, web.stderr);
    assert.match(web.stdout, /farm module web on n1, n2, n3, from nginx-farm/);
    const db = croft('module', 'add', 'postgresql-mirror', 'db', '--dir', dir, '--set', 'nodes=[n2, n3]', '--set', 'vip=10.0.0.60', '--set', 'witness.type=none');
    assert.equal(db.code, 0, db.stderr);
    assert.match(db.stdout, /mirror module db on n2, n3/);
    const check = croft('check', dir);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /module db: mirror on n2, n3/);
    assert.match(check.stdout, /module web: farm on n1, n2, n3/);

    const webYaml = fs.readFileSync(path.join(dir, 'modules', 'web', 'module.yaml'), 'utf8');
    assert.equal(parse(webYaml).vip, '10.0.0.100');
    assert.equal(parse(webYaml).drain_ms, 30000);
    assert.match(webYaml, /# nginx-farm: Debian's nginx/, 'the comments are kept');
    assert.deepEqual(parse(fs.readFileSync(path.join(dir, 'modules', 'db', 'module.yaml'), 'utf8')).nodes, ['n2', 'n3']);
    assert.equal(mode(path.join(dir, 'modules')), 0o755);
    assert.equal(mode(path.join(dir, 'modules', 'web')), 0o755);
    assert.equal(mode(path.join(dir, 'modules', 'web', 'start_both')), 0o755);
    assert.equal(mode(path.join(dir, 'modules', 'web', 'lib.sh')), 0o644);
    assert.equal(mode(path.join(dir, 'modules', 'db', 'start_prim')), 0o755);
    assert.equal(mode(path.join(dir, 'modules', 'db', 'module.yaml')), 0o644);

    // A kind's bare template, and the cloud farm whose scripts are links in the package: copied as files.
    assert.equal(croft('module', 'add', 'light', 'app', '--dir', dir).code, 0);
    assert.equal(mode(path.join(dir, 'modules', 'app', 'stop_both')), 0o755);
    const cloud = croft('module', 'add', 'nginx-farm-cloud', 'web2', '--dir', dir, '--set', 'ports=[8080]', '--set', 'checkers.0.url=http://127.0.0.1:8080/');
    assert.equal(cloud.code, 0, cloud.stderr);
    assert.ok(fs.lstatSync(path.join(dir, 'modules', 'web2', 'start_both')).isFile());
    assert.equal(croft('check', dir).code, 0);

    // No silent overwrite.
    const again = croft('module', 'add', 'nginx-farm', 'web', '--dir', dir);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /module web already exists.*--force/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('croft module add: unknown module, bad name, bad setting and a module croft would refuse are clear errors', () => {
  const dir = tmp();
  try {
    assert.equal(croft('init', ...INIT, '--dir', dir).code, 0);
    const unknown = croft('module', 'add', 'oracle-mirror', 'db', '--dir', dir);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown module "oracle-mirror": expected a kind \(farm, mirror, light\) or a shipped module \(.*nginx-farm.*postgresql-mirror/);
    assert.equal(croft('module', 'add', 'nginx-farm', 'Web_1', '--dir', dir).code, 2);
    // Names from the command line never leave <dir>/modules, nor read outside the shipped modules.
    assert.equal(croft('module', 'add', 'nginx-farm', '../escape', '--dir', dir).code, 2);
    assert.equal(croft('module', 'add', '../../etc', 'web', '--dir', dir).code, 2);
    assert.ok(!fs.existsSync(path.join(dir, 'escape')), 'nothing written beside modules/');
    assert.match(croft('module', 'add', 'nginx-farm', 'web', '--dir', dir, '--set', 'vip').stderr, /--set vip: expected key=value/);
    assert.match(croft('module', 'add', 'nginx-farm', 'web', '--dir', dir, '--set', 'checkers.5.url=x').stderr, /checkers has no item 5/);

    // A bad address: refused by the same checks as croft check, with file:line, and nothing left behind.
    const bad = croft('module', 'add', 'nginx-farm', 'web', '--dir', dir, '--set', 'vip=10.0.0.999');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`${dir}/modules/web/module.yaml:\\d+:\\d+: vip: .*10\\.0\\.0\\.999`));
    assert.match(bad.stderr, /module web would be refused .* not added/);
    // Nodes that are not in cluster.yaml (the shipped mirror's n1, n2 are; x9 is not).
    const nodes = croft('module', 'add', 'postgresql-mirror', 'db', '--dir', dir, '--set', 'nodes=[n1, x9]');
    assert.equal(nodes.code, 1);
    assert.match(nodes.stderr, /x9/);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'modules')), [], 'refused modules are removed, staging included');

    const none = tmp();
    try {
      const r = croft('module', 'add', 'nginx-farm', 'web', '--dir', none);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cluster\.yaml does not exist: create the configuration first \(croft init/);
    } finally {
      fs.rmSync(none, { recursive: true, force: true });
    }
    assert.equal(croft('module', 'frob').code, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
