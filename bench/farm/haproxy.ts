// The peer of (b): Debian's HAProxy as a dedicated load balancer, in a namespace of its own plugged
// into the lab's LAN 0 (a veth into the switch namespace's bridge), at LB_ADDRESS, with the same
// three nginx nodes as backends. Clients reach it through the lab's gateway, as they reach the VIP.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Lab } from '../../top/lab/index.js';
import { bridgeIf, CLIENT_GATEWAY, CLIENT_SUBNET, LAN_PREFIX_LEN } from '../../top/lab/names.js';
import { run, runOk } from '../../top/lab/run.js';

export const LB_ADDRESS = '10.77.0.200';
/** Switch-side end of the load balancer's link (lab links are n<i>l<k> and cl0: no clash). */
const SWITCH_IF = 'lb0';

export function lbNamespace(lab: Lab): string {
  return `croftbench-${lab.name}-lb`;
}

export function renderHaproxy(backends: { name: string; address: string }[], port: number, threads: number): string {
  return [
    'global',
    `  nbthread ${threads}`,
    '  maxconn 4096', // within the default open-files limit (HAProxy needs about 2 per connection)
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    // HAProxy's defaults otherwise: keep-alive on both sides, idle server connections reused (http-reuse safe).
    'frontend web',
    `  bind ${LB_ADDRESS}:${port}`,
    '  default_backend nodes',
    'backend nodes',
    '  balance roundrobin',
    ...backends.map((b) => `  server ${b.name} ${b.address}:${port} check inter 1s`),
    '',
  ].join('\n');
}

export interface LoadBalancer {
  namespace: string;
  switchNamespace: string;
  child: ChildProcess;
}

/** Namespace, link and address, then haproxy in the foreground (-db), its output in `logFile`. */
export async function startHaproxy(lab: Lab, workDir: string, port: number, threads: number): Promise<LoadBalancer> {
  const ns = lbNamespace(lab);
  const sw = lab.snapshot.switchNamespace;
  await runOk(['ip', 'netns', 'add', ns]);
  try {
    return await startIn(lab, ns, sw, workDir, port, threads);
  } catch (e) {
    await removeLb(ns, sw);
    throw e;
  }
}

async function startIn(lab: Lab, ns: string, sw: string, workDir: string, port: number, threads: number): Promise<LoadBalancer> {
  await runOk(['ip', '-n', sw, '-batch', '-'], {
    input: `link add ${SWITCH_IF} type veth peer name eth0 netns ${ns}\nlink set ${SWITCH_IF} master ${bridgeIf(0)} up\n`,
  });
  await runOk(['ip', '-n', ns, '-batch', '-'], {
    input: [
      'link set lo up',
      `addr add ${LB_ADDRESS}/${LAN_PREFIX_LEN} dev eth0`,
      'link set eth0 up',
      `route add ${CLIENT_SUBNET} via ${CLIENT_GATEWAY} dev eth0`,
      '',
    ].join('\n'),
  });
  // The usual tuning of a load balancer's host (per-namespace sysctls): more ephemeral ports for
  // its connections to the servers, and reuse of those in TIME_WAIT.
  await runOk(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);
  const conf = path.join(workDir, 'haproxy.cfg');
  fs.writeFileSync(conf, renderHaproxy(lab.nodes.map((n) => ({ name: n, address: lab.nodeAddress(n) })), port, threads));
  await runOk(['haproxy', '-c', '-q', '-f', conf]);
  const log = fs.openSync(path.join(workDir, 'haproxy.log'), 'a');
  const child = spawn('ip', ['netns', 'exec', ns, 'haproxy', '-db', '-f', conf], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  return { namespace: ns, switchNamespace: sw, child };
}

/** Stops the haproxy this bench started (by its pid), removes its link and its namespace. */
export async function stopHaproxy(lb: LoadBalancer): Promise<void> {
  const { child } = lb;
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
  }
  await removeLb(lb.namespace, lb.switchNamespace);
}

async function removeLb(ns: string, sw: string): Promise<void> {
  // The link first: a deleted namespace frees its interfaces later, in the background, and the
  // next start would meet the old switch-side end.
  await run(['ip', '-n', sw, 'link', 'del', SWITCH_IF]);
  await run(['ip', 'netns', 'del', ns]);
}
