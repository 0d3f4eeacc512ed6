// croft config push [--reload] [--to n2,n3] [--node NAME] [--json]: sends this node's config folder
// to every other node of cluster.yaml (or those of --to), each bundle sealed with the cluster key
// for that node (src/config/bundle.ts), to its API (POST /api/v1/config/push at its first address,
// api.port; https when api.tls). Each node checks the folder like `croft check` and swaps it in
// whole, or refuses it whole (top/daemon/push.ts). --reload: each node reloads after the swap, and
// then this node's daemon too. The folder must pass `croft check` here first.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { collectConfigFiles, sealBundle } from '../../src/config/bundle.js';
import { loadConfig } from '../../src/config/load.js';
import type { ClusterConfig } from '../../src/config/types.js';
import { CroftError } from '../../src/errors.js';
import { describeReload, type ReloadResult } from '../daemon/daemon.js';
import { localAddresses, resolveSelf } from '../daemon/identity.js';
import type { PushResult } from '../daemon/push.js';
import { readBody } from '../http-body.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { apiRequest, defaultConfigDir, targetFromConfig } from './client.js';

export const configUsage = `usage: croft config push [--reload] [--to NODE[,NODE...]] [--node NAME] [--config DIR] [--json]

  Sends this node's config folder (every regular file in it but hidden ones: cluster.yaml, modules/,
  scripts, key file) to the other nodes, sealed with the cluster key. Each node checks it like
  \`croft check\` and puts it in place whole (the previous folder kept as .<name>.previous beside it),
  or refuses it whole with file:line problems.
  --reload   reload every node after the push (this one included)
  --to       only these nodes (default: every other node of cluster.yaml)`;

/** A push or a reload can wait for modules to stop (their scripts and drains are bounded). */
const PUSH_TIMEOUT_MS = 600_000;

function nodeUrl(cluster: ClusterConfig, node: string): URL {
  const n = cluster.nodes.find((x) => x.name === node);
  const address = n?.addresses[0];
  if (!n || address === undefined) throw new CroftError('CROFT_ERR_UNKNOWN_NODE', `node "${node}" is not in ${cluster.file}`);
  const host = address.includes(':') ? `[${address}]` : address;
  return new URL(`${cluster.api.tls ? 'https' : 'http'}://${host}:${cluster.api.port}/api/v1/config/push`);
}

/** POSTs a bundle; the node's JSON answer, or a CroftError with its message. */
export function postBundle(url: URL, body: Buffer, ca: (string | Buffer)[] | undefined, timeoutMs = PUSH_TIMEOUT_MS): Promise<PushResult> {
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(url, {
      method: 'POST', ca, rejectUnauthorized: true, timeout: timeoutMs,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
    }, (res) => readBody(res, (json, text) => {
      if ((res.statusCode ?? 500) >= 400) {
        const e = json as { error?: string; message?: string };
        reject(new CroftError('CROFT_ERR_API', `HTTP ${res.statusCode}: ${e?.message ?? text}${e?.error ? ` [${e.error}]` : ''}`));
      } else {
        resolve(json as PushResult);
      }
    }));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(new CroftError('CROFT_ERR_API_UNREACHABLE', `cannot reach ${url.origin}: ${err.message}`)));
    req.end(body);
  });
}

export async function configCommand(argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'to', 'node', 'api', 'token']);
  rejectUnknown(args, ['config', 'to', 'node', 'api', 'token', 'reload', 'json']);
  if (args.positionals[0] !== 'push' || args.positionals.length !== 1) throw new CroftError('CROFT_ERR_USAGE', configUsage);
  const dir = flagString(args, 'config') ?? defaultConfigDir;
  // Refused here first: a folder that does not pass the checks is not sent anywhere.
  const config = loadConfig(dir);
  const cluster = config.cluster;
  const self = resolveSelf(cluster, flagString(args, 'node'), localAddresses());
  const to = flagString(args, 'to')?.split(',').filter(Boolean) ?? cluster.nodes.map((n) => n.name).filter((n) => n !== self);
  for (const n of to) {
    if (n === self) throw new CroftError('CROFT_ERR_USAGE', `--to ${n}: that is this node; its folder is the one pushed`);
    nodeUrl(cluster, n); // unknown node: a usage error before anything is sent
  }
  const reload = args.flags.has('reload');
  const files = collectConfigFiles(dir);
  const ca = cluster.api.tls ? [...tls.rootCertificates, fs.readFileSync(cluster.api.tls.cert, 'utf8')] : undefined;
  const results = await Promise.all(to.map(async (node) => {
    // One bundle per node, sealed for it: it cannot be replayed to another.
    const body = sealBundle(cluster.key, { v: 1, from: self, to: node, at: Date.now() }, { files, reload });
    try {
      return { node, ok: true as const, result: await postBundle(nodeUrl(cluster, node), body, ca) };
    } catch (err) {
      return { node, ok: false as const, error: err instanceof Error ? err.message : String(err) };
    }
  }));
  let local: { ok: true; result: ReloadResult } | { ok: false; error: string } | undefined;
  if (reload) {
    try {
      const target = targetFromConfig(dir, flagString(args, 'api'), flagString(args, 'token'));
      local = { ok: true, result: await apiRequest<ReloadResult>(target, 'POST', '/api/v1/reload', PUSH_TIMEOUT_MS) };
    } catch (err) {
      local = { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }
  const failed = results.filter((r) => !r.ok).length + (local && !local.ok ? 1 : 0)
    + results.filter((r) => r.ok && r.result.reload && 'error' in r.result.reload).length;
  if (args.flags.has('json')) {
    out.log(JSON.stringify({ from: self, files: files.length, nodes: results, local }, null, 2));
    return failed ? 1 : 0;
  }
  for (const r of results) {
    if (!r.ok) {
      out.error(`${r.node}: push refused or failed: ${r.error}`);
      continue;
    }
    const rl = r.result.reload;
    const reloadText = rl === undefined ? '' : 'error' in rl ? `; reload failed: ${rl.message} [${rl.error}]` : `; reload: ${describeReload(rl)}`;
    out.log(`${r.node}: ${r.result.files} files (${r.result.bytes} bytes) in place${reloadText}`);
  }
  if (local) out.log(local.ok ? `${self} (this node): reload: ${describeReload(local.result)}` : `${self} (this node): reload failed: ${local.error}`);
  return failed ? 1 : 0;
}
