// Golden scenarios for the membership core (etcd raft's data-driven tests are the model). A file is a
// list of blocks separated by blank lines; each block is a command, a line `----`, and the expected
// output of that command. `#` lines before a command are comments. UPDATE=1 rewrites the outputs.
//
// Commands (time is simulated; the network is lossless with 1 ms delay unless cut):
//   nodes <n> [lans <k>] [interval <ms>] [timeout <ms>]   create and start the cluster (once, first)
//   tick <k>                     advance k heartbeat intervals; prints peer_up/peer_down/view/drop lines
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

export interface Block {
  comments: string[];
  command: string;
  expected: string[];
}

export function parseScenario(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const comments: string[] = [];
    while (i < lines.length && ((lines[i] ?? '').trim() === '' || (lines[i] ?? '').startsWith('#'))) {
      if ((lines[i] ?? '').startsWith('#')) comments.push(lines[i] ?? '');
      i++;
    }
    if (i >= lines.length) break;
    const command = (lines[i] ?? '').trim();
    i++;
    assert.equal((lines[i] ?? '').trim(), '----', `line ${i + 1}: expected ---- after "${command}"`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && (lines[i] ?? '').trim() !== '') expected.push(lines[i++] ?? '');
    blocks.push({ comments, command, expected });
  }
  return blocks;
}

export function formatScenario(blocks: Block[]): string {
  return blocks.map((b) => [...b.comments, b.command, '----', ...b.expected].join('\n')).join('\n\n') + '\n';
}

function lanArg(arg: string | undefined, lans: number): number[] {
  if (arg === undefined) return Array.from({ length: lans }, (_, i) => i);
  const m = /^lan(\d+)$/.exec(arg);
  assert.ok(m, `bad LAN "${arg}" (want lan0, lan1...)`);
  const lan = Number(m[1]);
  assert.ok(lan < lans, `no ${arg}`);
  return [lan];
}

export class ScenarioRunner {
  private sim: SimCluster | null = null;

  private get cluster(): SimCluster {
    assert.ok(this.sim, 'the first command must be `nodes <n>`');
    return this.sim;
  }

  /** Runs one command and returns its output lines. */
  run(command: string): string[] {
    const [cmd, ...args] = command.split(/\s+/);
    const before = this.sim?.traceLines?.length ?? 0;
    switch (cmd) {
      case 'nodes': {
        assert.ok(!this.sim, 'nodes given twice');
        const opts: Record<string, number> = { lans: 1, interval: 100, timeout: 500 };
        for (let i = 1; i < args.length; i += 2) opts[args[i] as string] = Number(args[i + 1]);
        this.sim = new SimCluster({
          nodes: Number(args[0]), lans: opts.lans as number, intervalMs: opts.interval as number,
          timeoutMs: opts.timeout as number, rng: mulberry32(1), trace: true,
        });
        for (const n of this.sim.names) this.sim.start(n);
        return ['ok'];
      }
      case 'tick': {
        const c = this.cluster;
        c.runUntil(c.nowMs + Number(args[0] ?? 1) * c.intervalMs);
        break;
      }
      case 'cut':
      case 'heal': {
        const c = this.cluster;
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
        this.cluster.kill(args[0] as string);
        break;
      case 'restart': {
        const c = this.cluster;
        const name = args[0] as string;
        if (c.node(name).alive) c.kill(name);
        c.start(name);
        break;
      }
      case 'replay': {
        const c = this.cluster;
        const [from, to] = (args[0] ?? '').split('->') as [string, string];
        assert.ok(c.replay(to, from, args[1] === 'other-lan'), `${to} has accepted nothing from ${from} yet`);
        c.runUntil(c.nowMs);
        break;
      }
      case 'forge': {
        const c = this.cluster;
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
          mods[k] = { state: v, sinceMs: this.cluster.nowMs };
        }
        this.cluster.setModules(args[0] as string, mods);
        break;
      }
      case 'status':
        return this.cluster.status();
      default:
        throw new Error(`unknown command "${command}"`);
    }
    const out = (this.sim?.traceLines ?? []).slice(before);
    return out.length > 0 ? out : ['ok'];
  }
}
