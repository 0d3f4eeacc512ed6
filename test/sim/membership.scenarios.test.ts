// Golden scenarios of the membership core, test/scenarios/membership/*.txt, in the format of
// scenario.ts; this file is their driver. Time is simulated; the network is lossless with 1 ms delay
// unless cut. Steps print the trace lines they caused (peer_up/peer_down/view/drop), nothing if none.
//
// Header: membership nodes=<n> [lans=<k>] [interval=<ms>] [timeout=<ms>]   creates and starts the nodes
// Steps:
//   tick <k>                     advance k heartbeat intervals
//   cut <node> [lanX]            cut every link of node (both directions) on all LANs or on lanX
//   cut <a>-><b> [lanX]          cut one direction only
//   heal [<node>|<a>-><b>] [lanX] heal those links (no argument: everything)
//   kill <node>                  crash it
//   restart <node>               (re)start it with a larger incarnation (kills it first if alive)
//   replay <from>-><to> [other-lan]  replay a datagram <to> already accepted from <from>
//   forge <to> [as <node>]       inject a heartbeat signed with a wrong key or altered in transit
//   modules <node> <m>=<STATE>...   set the node's local modules
//   status                       one line per node: view, epoch, converged, module states seen
import assert from 'node:assert/strict';
import { SimCluster } from './cluster.js';
import { mulberry32 } from './prng.js';
import { goldenTests, type Domain, type Driver } from './scenario.js';

function lanArg(arg: string | undefined, lans: number): number[] {
  if (arg === undefined) return Array.from({ length: lans }, (_, i) => i);
  const m = /^lan(\d+)$/.exec(arg);
  assert.ok(m, `bad LAN "${arg}" (want lan0, lan1...)`);
  const lan = Number(m[1]);
  assert.ok(lan < lans, `no ${arg}`);
  return [lan];
}

class MembershipDriver implements Driver {
  constructor(private readonly c: SimCluster) {}

  step(line: string): string[] {
    const c = this.c;
    const [cmd, ...args] = line.split(/\s+/);
    const before = c.traceLines?.length ?? 0;
    switch (cmd) {
      case 'tick':
        c.runUntil(c.nowMs + Number(args[0] ?? 1) * c.intervalMs);
        break;
      case 'cut':
      case 'heal': {
        const target = args[0];
        if (cmd === 'heal' && target === undefined) {
          c.healAll();
          break;
        }
        assert.ok(target, `${cmd} needs a node`);
        const lans = lanArg(args[1], c.lans);
        const pairs: [string, string][] = [];
        if (target.includes('->')) {
          const [a, b] = target.split('->') as [string, string];
          pairs.push([a, b]);
        } else {
          c.node(target);
          for (const x of c.names) if (x !== target) pairs.push([target, x], [x, target]);
        }
        for (const lan of lans) for (const [a, b] of pairs) (cmd === 'cut' ? c.cut(lan, a, b) : c.heal(lan, a, b));
        break;
      }
      case 'kill':
        c.kill(args[0] as string);
        break;
      case 'restart': {
        const name = args[0] as string;
        if (c.node(name).alive) c.kill(name);
        c.start(name);
        break;
      }
      case 'replay': {
        const [from, to] = (args[0] ?? '').split('->') as [string, string];
        assert.ok(c.replay(to, from, args[1] === 'other-lan'), `${to} has accepted nothing from ${from} yet`);
        c.runUntil(c.nowMs);
        break;
      }
      case 'forge': {
        const to = args[0] as string;
        const as = args[1] === 'as' ? (args[2] as string) : (c.names.find((x) => x !== to) as string);
        c.forge(to, as);
        c.runUntil(c.nowMs);
        break;
      }
      case 'modules': {
        const mods: Record<string, { state: string; sinceMs: number }> = {};
        for (const kv of args.slice(1)) {
          const [k, v] = kv.split('=') as [string, string];
          mods[k] = { state: v, sinceMs: c.nowMs };
        }
        c.setModules(args[0] as string, mods);
        break;
      }
      case 'status':
        return c.status();
      default:
        throw new Error(`unknown step "${line}"`);
    }
    return (c.traceLines ?? []).slice(before);
  }
}

export const membershipDomain: Domain = {
  name: 'membership',
  start(o) {
    const c = new SimCluster({
      nodes: o.num('nodes'), lans: o.num('lans', 1), intervalMs: o.num('interval', 100),
      timeoutMs: o.num('timeout', 500), rng: mulberry32(1), trace: true,
    });
    for (const n of c.names) c.start(n);
    return { driver: new MembershipDriver(c), output: [] };
  },
};

goldenTests(membershipDomain, 6);
