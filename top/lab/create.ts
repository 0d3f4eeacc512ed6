// lab up: checks, namespaces, network, mount namespaces, config, daemons. Any failure tears down
// what was made (by discovery, so nothing is missed) and reports the first error.
import fs from 'node:fs';
import path from 'node:path';
import { CroftError } from '../../src/errors.js';
import {
  checkLabName, clientAddress, clientAddress6, clientNs, MAX_CLIENTS, MAX_LANS, MAX_NODES, nodeAddress, nodeAddress6, nodeName, nodeNs,
  stateDirOf, switchNs,
} from './names.js';
import { preflight } from './preflight.js';
import { addNetns, buildTopology } from './topology.js';
import { createNodeMountNs, mountNsFile, NODE_BIND_PATHS, NODE_CONFIG_PATH, nodeDir, preparePrivateMntDir } from './mounts.js';
import { configPrivatePaths } from './private-paths.js';
import { writeLabConfig } from './labconfig.js';
import { pidNsFile, startNodeInit } from './pidns.js';
import { daemonCommand, startDaemon } from './daemons.js';
import { ensureCroftShim } from './enter.js';
import { labNamespaces, teardown } from './teardown.js';
import { type LabState, writeState } from './state.js';

export interface LabUpOptions {
  /** Default "lab". */
  name?: string;
  /** Default 3. */
  nodes?: number;
  /** Source addresses of the client. Default 1. */
  clients?: number;
  /** Default 1. */
  lans?: number;
  /** IPv6 addresses too (unique local, names.ts), on the nodes and the client. Default false. */
  ipv6?: boolean;
  /** Folder copied into the lab config dir (module files, scripts, maybe cluster.yaml). */
  config?: string;
  /** Heartbeat of the generated cluster.yaml: fast, a lab is a LAN on one machine. Default 100. */
  intervalMs?: number;
  /** Default 500 (5 intervals). */
  timeoutMs?: number;
  /** Build the lab without starting daemons. Default true (daemons run). */
  daemons?: boolean;
  /** Command run as each node's daemon (argv, inside the node); default: `croft daemon` (or CROFT_LAB_DAEMON_CMD). */
  daemonCommand?: (node: string) => string[];
}

/** Output of the node's init (pidns.ts): only an error, if it fails to start. */
export function initLog(stateDir: string, node: string): string {
  return path.join(nodeDir(stateDir, node), 'init.log');
}

function intOpt(v: number | undefined, dflt: number, min: number, max: number, what: string): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < min || n > max) throw new CroftError('CROFT_ERR_USAGE', `${what} must be an integer from ${min} to ${max}, got ${n}`);
  return n;
}

export async function createLab(opts: LabUpOptions): Promise<LabState> {
  const name = opts.name ?? 'lab';
  checkLabName(name);
  const nodes = intOpt(opts.nodes, 3, 1, MAX_NODES, '--nodes');
  const clients = intOpt(opts.clients, 1, 1, MAX_CLIENTS, '--clients');
  const lans = intOpt(opts.lans, 1, 1, MAX_LANS, '--lans');
  const intervalMs = intOpt(opts.intervalMs, 100, 1, 3_600_000, '--interval-ms');
  const timeoutMs = intOpt(opts.timeoutMs, 500, 1, 3_600_000, '--timeout-ms');
  preflight();
  const stateDir = stateDirOf(name);
  if (fs.existsSync(stateDir) || labNamespaces(name).length > 0) {
    throw new CroftError('CROFT_ERR_LAB', `lab ${name} is already up (or left over): run \`croft lab down --name ${name}\` first`);
  }

  const configDir = path.join(stateDir, 'config');
  const state: LabState = {
    version: 1,
    name,
    stateDir,
    createdAt: new Date().toISOString(),
    lans,
    switchNamespace: switchNs(name),
    nodes: Array.from({ length: nodes }, (_, i) => {
      const node = nodeName(i + 1);
      return {
        name: node,
        index: i + 1,
        namespace: nodeNs(name, node),
        addresses: Array.from({ length: lans }, (_, k) => nodeAddress(i + 1, k)),
        ...(opts.ipv6 ? { addresses6: Array.from({ length: lans }, (_, k) => nodeAddress6(i + 1, k)) } : {}),
        mountNs: mountNsFile(stateDir, node),
        pidNs: pidNsFile(stateDir, node),
        dirs: {},
        daemonLog: path.join(nodeDir(stateDir, node), 'daemon.log'),
        netem: {},
      };
    }),
    client: {
      namespace: clientNs(name),
      addresses: Array.from({ length: clients }, (_, j) => clientAddress(j)),
      ...(opts.ipv6 ? { addresses6: Array.from({ length: clients }, (_, j) => clientAddress6(j)) } : {}),
    },
    namespaces: [],
    configDir,
    daemons: opts.daemons ?? true,
  };

  try {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeState(state);
    const record = (ns: string) => { state.namespaces.push(ns); writeState(state); };
    await addNetns(state.switchNamespace, record);
    for (const n of state.nodes) await addNetns(n.namespace, record);
    await addNetns(state.client.namespace, record);
    await buildTopology({
      switchNs: state.switchNamespace,
      clientNs: state.client.namespace,
      nodes: state.nodes.map((n) => ({ index: n.index, namespace: n.namespace })),
      lans,
      clients,
      ipv6: opts.ipv6 ?? false,
    });

    writeLabConfig({ labName: name, configDir, sourceDir: opts.config, lans, nodes: state.nodes, intervalMs, timeoutMs });
    ensureCroftShim(stateDir);
    await preparePrivateMntDir(stateDir);
    // Every directory the config names (mirror dirs, state_dir...) is private per node too.
    const { paths: configPaths, skipped } = configPrivatePaths(configDir, [...NODE_BIND_PATHS.map((b) => b.target), NODE_CONFIG_PATH]);
    for (const n of state.nodes) {
      fs.mkdirSync(nodeDir(stateDir, n.name), { recursive: true });
      n.dirs = await createNodeMountNs(stateDir, n.name, n.namespace, configDir, configPaths);
      // Said in the node's log, where its daemon's lines follow.
      fs.appendFileSync(n.daemonLog, `--- croft lab: ${n.name} has its own copy of ${Object.keys(n.dirs).filter((d) => d !== NODE_CONFIG_PATH).join(', ')}`
        + ` (folders under ${nodeDir(stateDir, n.name)}); /etc/croft is the lab's config${skipped.length ? `; shared, being system folders: ${skipped.join(', ')}` : ''}\n`);
      n.initPid = await startNodeInit(stateDir, n.name, n.namespace, n.mountNs, initLog(stateDir, n.name));
    }
    writeState(state);

    if (state.daemons) {
      for (const n of state.nodes) {
        const command = opts.daemonCommand?.(n.name) ?? daemonCommand(n.name);
        n.daemonCommand = command;
        n.daemonPid = await startDaemon({
          labName: name, stateDir, node: n.name, netns: n.namespace, mountNs: n.mountNs, pidNs: n.pidNs, command, logFile: n.daemonLog,
        });
        writeState(state);
      }
    }
    return state;
  } catch (e) {
    try {
      await teardown(name);
    } catch (e2) {
      throw new CroftError('CROFT_ERR_LAB', `lab up failed (${(e as Error).message}) and so did the cleanup (${(e2 as Error).message})`, { cause: e });
    }
    if (e instanceof CroftError) throw new CroftError(e.code, `lab up failed, everything it made was removed: ${e.message}`, { cause: e });
    throw e;
  }
}
