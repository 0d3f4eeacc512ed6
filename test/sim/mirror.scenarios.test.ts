// Golden scenarios of the mirror machine, test/scenarios/mirror/*.txt, in the format of scenario.ts;
// this file is their driver, a thin layer over two machines wired by test/sim/mirror.pair.ts. Each
// step prints the events that made a machine act (`n1 < ...`), its actions (`n1 > ...`) and the
// pair's state (`= t=... n1=STATE/record n2=... lease=holder`); the header prints the state it
// starts from. Everything queued is delivered, in order, after each step.
//
// Header: mirror [witness=none|ping|redis] [pref=n1|n2] [peerwait=ms] [ttl=ms] [margin=ms] [poll=ms]
//                [scripts=auto|manual] [reint=auto|manual] [checker=<name>:<dependency|app>:<restart|stop|wait>]...
// Steps:
//   data <n> up-to-date|stale|unknown [<g> [<peer g>]]   the node's persistent record (read at boot)
//   start|stop|prim|second|swap <n>     commands
//   +<ms>                                time passes (wake-up ticks, witness checks every poll ms)
//   cut | heal                           heartbeats and replication stream both
//   break-link | link-up                 the replication stream only
//   crash <n> | restart <n>              a daemon dies (its lease stays until it expires) / comes back
//   outcome <n> <script> ok|fail|timeout the next run of that script ends so (scripts=auto)
//   done <n> ok|fail|timeout             the running script ends (scripts=manual)
//   reint-done                           the data plane finishes the reintegration (reint=manual)
//   ping <n> on|off                      whether n's ping witness answers
//   redis up|down                        whether redis answers
//   probe <n> <checker> ok|fail
import assert from 'node:assert/strict';
import { MirrorPair, type Outcome, type PairOptions } from './mirror.pair.js';
import type { DataStatus, MirrorCheckerConfig, MirrorScript, WitnessKind } from '../../mirror/types.js';
import { goldenTests, parseChecker, type Domain } from './scenario.js';

function run(p: MirrorPair, words: string[], line: string): void {
  const [cmd, a, b, c] = words;
  switch (cmd) {
    case 'data':
      // data <node> <status> [<generation> [<peerGeneration>]]
      p.node(a!).record = { status: b as DataStatus, generation: Number(c ?? 0), peerGeneration: Number(words[4] ?? c ?? 0) };
      p.step(a!, { type: 'data', ...p.node(a!).record });
      break;
    case 'start':
    case 'stop':
    case 'prim':
    case 'second':
    case 'swap':
      p.command(a!, cmd);
      break;
    case 'cut':
      p.cut();
      break;
    case 'heal':
      p.heal();
      break;
    case 'break-link':
      p.breakLink();
      break;
    case 'link-up':
      p.linkUp();
      break;
    case 'crash':
      p.crash(a!);
      break;
    case 'restart':
      p.restart(a!);
      break;
    case 'outcome':
      p.node(a!).nextOutcome[b as MirrorScript] = c as Outcome;
      break;
    case 'done':
      p.finishScript(a!, b as Outcome);
      break;
    case 'reint-done':
      assert.ok(p.finishReintegration(), `${line}: no reintegration with both sides`);
      break;
    case 'ping':
      p.node(a!).pingReach = b === 'on';
      break;
    case 'redis':
      p.redis.up = a === 'up';
      break;
    case 'probe':
      p.step(a!, { type: 'probe', checker: b!, ok: c === 'ok', detail: c! });
      break;
    default:
      if (cmd?.startsWith('+')) {
        p.advance(Number(cmd.slice(1)), true);
        return;
      }
      throw new Error(`unknown step "${line}"`);
  }
  p.drain();
}

export const mirrorDomain: Domain = {
  name: 'mirror',
  start(o) {
    const opts: Partial<PairOptions> = {};
    if (o.has('witness')) opts.witness = o.str('witness') as WitnessKind;
    if (o.has('pref')) opts.primPreference = o.str('pref');
    if (o.has('peerwait')) opts.peerWaitMs = o.num('peerwait');
    if (o.has('ttl')) opts.ttlMs = o.num('ttl');
    if (o.has('margin')) opts.marginMs = o.num('margin');
    if (o.has('poll')) opts.pollMs = o.num('poll');
    if (o.has('scripts')) opts.autoScripts = o.str('scripts') === 'auto';
    if (o.has('reint')) opts.autoReintegration = o.str('reint') === 'auto';
    opts.checkers = o.all('checker').map((spec) => {
      const c = parseChecker(spec);
      return { ...c, kind: c.kind as MirrorCheckerConfig['kind'], onFailure: c.onFailure as MirrorCheckerConfig['onFailure'] };
    });
    const p = new MirrorPair(opts);
    p.lines.length = 0;
    return {
      output: [p.status()],
      driver: {
        step(line) {
          const from = p.lines.length;
          run(p, line.split(/\s+/), line);
          return [...p.lines.slice(from), p.status()];
        },
      },
    };
  },
};

goldenTests(mirrorDomain, 6);
