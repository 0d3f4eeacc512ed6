// Golden scenarios of the mirror machine (etcd raft's data-driven tests): test/scenarios/mirror/*.txt
// are short scripts replayed against two machines wired by test/sim/mirror.pair.ts; after each input
// line come, indented, the events that made a machine act (`n1 < ...`), its actions (`n1 > ...`) and
// the pair's state (`= t=... n1=STATE/record n2=... lease=holder`). Everything queued is delivered,
// in order, after each line. CROFT_UPDATE_GOLDEN=1 rewrites the files (then read the diff!).
//
// First line: pair [witness=none|ping|redis] [pref=n1|n2] [peerwait=ms] [ttl=ms] [margin=ms]
//                  [poll=ms] [scripts=auto|manual] [reint=auto|manual] [checker=name:dependency|app:restart|stop|wait]
// Then:
//   data <n> up-to-date|stale|unknown   the node's persistent record (read at boot)
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
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/paths.js';
import { MirrorPair, type Outcome, type PairOptions } from './mirror.pair.js';
import type { DataStatus, MirrorCheckerConfig, MirrorScript, WitnessKind } from '../../mirror/types.js';

const dir = path.join(repoRoot, 'test', 'scenarios', 'mirror');

function parseHeader(words: string[]): Partial<PairOptions> {
  const o: Partial<PairOptions> = {};
  const checkers: MirrorCheckerConfig[] = [];
  for (const w of words.slice(1)) {
    const [k, v] = w.split('=') as [string, string];
    switch (k) {
      case 'witness':
        o.witness = v as WitnessKind;
        break;
      case 'pref':
        o.primPreference = v;
        break;
      case 'peerwait':
        o.peerWaitMs = Number(v);
        break;
      case 'ttl':
        o.ttlMs = Number(v);
        break;
      case 'margin':
        o.marginMs = Number(v);
        break;
      case 'poll':
        o.pollMs = Number(v);
        break;
      case 'scripts':
        o.autoScripts = v === 'auto';
        break;
      case 'reint':
        o.autoReintegration = v === 'auto';
        break;
      case 'checker': {
        const [name, kind, onFailure] = v.split(':') as [string, MirrorCheckerConfig['kind'], MirrorCheckerConfig['onFailure']];
        checkers.push({ name, kind, onFailure, rise: 1, fall: 1 });
        break;
      }
      default:
        throw new Error(`unknown pair option ${w}`);
    }
  }
  o.checkers = checkers;
  return o;
}

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
      throw new Error(`unknown scenario line: ${line}`);
  }
  p.drain();
}

/** Replays the input lines of a scenario; returns the file as it should read. */
export function replay(text: string): string {
  const out: string[] = [];
  let p: MirrorPair | null = null;
  for (const raw of text.split('\n')) {
    if (raw.startsWith('  ')) continue; // expected output: regenerated below
    const line = raw.trimEnd();
    out.push(line);
    if (line === '' || line.startsWith('#')) continue;
    const words = line.split(/\s+/);
    if (p === null) {
      assert.equal(words[0], 'pair', 'the first line is `pair ...`');
      p = new MirrorPair(parseHeader(words));
      p.lines.length = 0;
      out.push(`  ${p.status()}`);
      continue;
    }
    const from = p.lines.length;
    run(p, words, line);
    for (const l of p.lines.slice(from)) out.push(`  ${l}`);
    out.push(`  ${p.status()}`);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return `${out.join('\n')}\n`;
}

const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort() : [];

test('there are at least 6 mirror scenarios', () => {
  assert.ok(files.length >= 6, `found ${files.length}`);
});

for (const f of files) {
  test(`mirror scenario ${f}`, () => {
    const p = path.join(dir, f);
    const text = fs.readFileSync(p, 'utf8');
    const got = replay(text);
    if (process.env.CROFT_UPDATE_GOLDEN === '1') fs.writeFileSync(p, got);
    else assert.equal(got, text, `${f}: trace differs (CROFT_UPDATE_GOLDEN=1 rewrites it; review the diff)`);
  });
}
