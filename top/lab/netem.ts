// Delay, jitter and loss on a node's links: tc netem on the node's interface (egress) when the
// kernel has sch_netem; otherwise a userspace relay in the switch namespace with the same effect
// (netem_relay.py), since some kernels (this project's CI VM among them) are built without it.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { CroftError } from '../../src/errors.js';
import { run, runOk } from './run.js';
import { bridgeIf, netnsPath, nodeIf, relayIfs, switchIfOfNode } from './names.js';
import { netemRelayScript } from './paths.js';
import { findTool } from './preflight.js';
import type { LinkNetem, NetemSettings } from './state.js';

export type NetemSpec = { clear: true } | ({ clear?: false } & NetemSettings);

function parseMs(s: string | undefined, what: string): number {
  const m = s === undefined ? null : /^(\d+(?:\.\d+)?)(us|ms|s)?$/.exec(s);
  if (!m) throw new CroftError('CROFT_ERR_USAGE', `netem: ${what} must be a time like 50ms, got ${s ?? 'nothing'}`);
  const v = Number(m[1]);
  return m[2] === 's' ? v * 1000 : m[2] === 'us' ? v / 1000 : v;
}

/** `loss 10%`, `delay 50ms [10ms]`, both, or `clear`. */
export function parseNetemSpec(tokens: string[]): NetemSpec {
  if (tokens.length === 1 && tokens[0] === 'clear') return { clear: true };
  const spec: NetemSettings = {};
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === 'loss') {
      const m = /^(\d+(?:\.\d+)?)%?$/.exec(tokens[++i] ?? '');
      if (!m || Number(m[1]) > 100) throw new CroftError('CROFT_ERR_USAGE', 'netem: loss needs a percentage, like 10%');
      spec.lossPercent = Number(m[1]);
    } else if (t === 'delay') {
      spec.delayMs = parseMs(tokens[++i], 'delay');
      const next = tokens[i + 1];
      if (next !== undefined && /^\d/.test(next)) spec.jitterMs = parseMs(tokens[++i], 'jitter');
      else spec.jitterMs = 0;
    } else {
      throw new CroftError('CROFT_ERR_USAGE', `netem: expected loss, delay or clear, got ${t ?? 'nothing'}`);
    }
  }
  if (tokens.length === 0) throw new CroftError('CROFT_ERR_USAGE', 'netem: expected loss <pct>, delay <time> [jitter] or clear');
  return spec;
}

export interface NetemLink {
  stateDir: string;
  switchNs: string;
  nodeNs: string;
  node: string;
  index: number;
  lan: number;
  current?: LinkNetem;
}

const isEmpty = (s: NetemSettings) => !s.delayMs && !s.jitterMs && !s.lossPercent;

function tcArgs(s: NetemSettings): string[] {
  const args: string[] = [];
  if (s.delayMs) args.push('delay', `${s.delayMs}ms`, ...(s.jitterMs ? [`${s.jitterMs}ms`] : []));
  if (s.lossPercent) args.push('loss', `${s.lossPercent}%`);
  return args;
}

/** Applies the settings (merged over the current ones by the caller); returns the new link state. */
export async function applyNetem(link: NetemLink, settings: NetemSettings): Promise<LinkNetem | undefined> {
  const dev = nodeIf(link.lan);
  if (link.current?.method === 'relay' || (link.current === undefined && !(await kernelHasNetem(link.nodeNs, dev)))) {
    return applyRelay(link, settings);
  }
  if (isEmpty(settings)) {
    await run(['tc', '-n', link.nodeNs, 'qdisc', 'del', 'dev', dev, 'root']);
    return undefined;
  }
  await runOk(['tc', '-n', link.nodeNs, 'qdisc', 'replace', 'dev', dev, 'root', 'netem', ...tcArgs(settings)]);
  return { method: 'tc', ...settings };
}

let netemKnown: boolean | undefined;
async function kernelHasNetem(ns: string, dev: string): Promise<boolean> {
  if (netemKnown !== undefined) return netemKnown;
  const r = await run(['tc', '-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'netem', 'delay', '0ms']);
  if (r.code === 0) {
    await run(['tc', '-n', ns, 'qdisc', 'del', 'dev', dev, 'root']);
    netemKnown = true;
  } else if (/unknown/i.test(r.stderr)) {
    netemKnown = false;
  } else {
    throw new CroftError('CROFT_ERR_LAB', `tc netem failed on ${dev}: ${r.stderr.trim()}`);
  }
  return netemKnown;
}

async function stopRelay(link: NetemLink): Promise<void> {
  const pid = link.current?.relayPid;
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* gone */ }
  // Wait until it is gone, so the next relay is the only reader of the interfaces.
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function applyRelay(link: NetemLink, settings: NetemSettings): Promise<LinkNetem | undefined> {
  const swIf = switchIfOfNode(link.index, link.lan);
  const { bridgeSide, relaySide } = relayIfs(link.index, link.lan);
  await stopRelay(link);
  if (isEmpty(settings)) {
    // Back to the plain bridge port.
    await runOk(['ip', '-n', link.switchNs, '-batch', '-'], {
      input: `link set ${swIf} master ${bridgeIf(link.lan)}\nlink del ${bridgeSide}\n`,
    });
    return undefined;
  }
  if (link.current === undefined) {
    await runOk(['ip', '-n', link.switchNs, '-batch', '-'], {
      input: [
        `link add ${bridgeSide} type veth peer name ${relaySide}`,
        `link set ${swIf} nomaster`,
        `link set ${bridgeSide} master ${bridgeIf(link.lan)} up`,
        `link set ${relaySide} up`,
        '',
      ].join('\n'),
    });
  }
  const python = findTool('python3');
  if (python === undefined) throw new CroftError('CROFT_ERR_LAB', 'this kernel has no sch_netem and python3 (for the userspace netem relay) is missing');
  const logFile = path.join(link.stateDir, 'nodes', link.node, `netem-lan${link.lan}.log`);
  const log = fs.openSync(logFile, 'a');
  const child = spawn('nsenter', [`--net=${netnsPath(link.switchNs)}`, '--', python, netemRelayScript,
    '--node-if', swIf, '--bridge-if', relaySide,
    '--delay-ms', String(settings.delayMs ?? 0), '--jitter-ms', String(settings.jitterMs ?? 0),
    '--loss-pct', String(settings.lossPercent ?? 0)], { detached: true, stdio: ['ignore', 'pipe', log] });
  fs.closeSync(log);
  const pid = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CroftError('CROFT_ERR_LAB', `netem relay did not start; see ${logFile}`)), 5000);
    child.once('error', (e) => { clearTimeout(timer); reject(new CroftError('CROFT_ERR_LAB', `netem relay: ${e.message}`)); });
    child.once('exit', () => { clearTimeout(timer); reject(new CroftError('CROFT_ERR_LAB', `netem relay exited; see ${logFile}`)); });
    child.stdout!.once('data', () => { clearTimeout(timer); resolve(child.pid!); });
  }).catch((e: unknown) => {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
    throw e;
  });
  child.removeAllListeners('exit');
  child.stdout!.destroy();
  child.unref();
  return { method: 'relay', ...settings, relayPid: pid };
}
