// The peer of the failover measure: Debian's keepalived, VRRP between the three nodes of a lab
// without croft daemons, moving the VIP to the node that is MASTER. Each node runs its own nginx
// (modules/nginx-farm's scripts) listening on every address, so the MASTER serves the VIP.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Lab } from '../../top/lab/index.js';
import { nodeIf } from '../../top/lab/names.js';

export const VRRP_ROUTER_ID = 77;

/**
 * VRRPv3 (RFC 5798) takes advertisement intervals in centiseconds; keepalived 2.2.7 accepts down to
 * 0.01 s. A backup declares the master dead after 3 intervals plus a skew of (256 - priority)/256 of
 * one (RFC 5798 6.1). All start as BACKUP with nopreempt: a node that comes back does not take the
 * VIP back (which would be a second, needless failover during the next run).
 */
export function renderKeepalived(o: { node: string; priority: number; vip: string; prefixLen: number; advertIntS: number }): string {
  return `global_defs {
  router_id ${o.node}
  vrrp_version 3
  # gratuitous ARPs at once on becoming MASTER (5 of them), none delayed
  vrrp_garp_master_delay 0
}
vrrp_instance web {
  state BACKUP
  nopreempt
  interface ${nodeIf(0)}
  virtual_router_id ${VRRP_ROUTER_ID}
  priority ${o.priority}
  advert_int ${o.advertIntS}
  virtual_ipaddress {
    ${o.vip}/${o.prefixLen} dev ${nodeIf(0)}
  }
}
`;
}

let starts = 0;

/**
 * keepalived in the foreground in the node's namespaces (VRRP only), its log in workDir. Fresh pid
 * files at every start: the VRRP child of a SIGKILLed keepalived may linger as a zombie (where pid 1
 * does not reap orphans, as in containers), and keepalived takes a pid file naming it for a
 * running daemon and refuses to start.
 */
export function startKeepalived(lab: Lab, node: string, workDir: string, conf: string): ChildProcess {
  starts += 1;
  const file = path.join(workDir, `keepalived-${node}.conf`);
  fs.writeFileSync(file, conf);
  const log = fs.openSync(path.join(workDir, `keepalived-${node}.log`), 'a');
  const child = lab.spawn(node, [
    'keepalived', '--dont-fork', '--log-console', '--log-detail', '--vrrp', '--use-file', file,
    '--pid', path.join(workDir, `keepalived-${node}-${starts}.pid`), '--vrrp_pid', path.join(workDir, `keepalived-vrrp-${node}-${starts}.pid`),
  ], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  return child;
}

/** Nodes whose LAN 0 interface holds `vip` (the MASTER, and a killed MASTER's leftover). */
export async function vipHolders(lab: Lab, vip: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of lab.nodes) {
    const r = await lab.exec(n, ['ip', '-4', '-o', 'addr', 'show', 'dev', nodeIf(0)]);
    if (r.stdout.includes(` ${vip}/`)) out.push(n);
  }
  return out;
}
