// The mirror machine under test: a machine and a clock stepped by the tests, and ways to reach
// each state (test/unit/mirror-machine*.test.ts).
import assert from 'node:assert/strict';
import { createMirrorMachine, mirrorStep, type Move, type MirrorMachine } from '../../mirror/machine.js';
import type { MirrorAction, MirrorCheckerConfig, MirrorEvent, MirrorMachineConfig, MirrorState, PeerView, WitnessKind } from '../../mirror/types.js';

export function cfg(over: Partial<MirrorMachineConfig> = {}): MirrorMachineConfig {
  return { module: 'db', node: 'n1', peer: 'n2', witness: 'none', primPreference: null, peerWaitMs: 0, checkers: [], restart: { maxloop: 2, windowMs: 60_000 }, ...over };
}

export const view = (state: MirrorState, over: Partial<PeerView> = {}): PeerView => ({ state, dataUpToDate: true, generation: 0, eligible: true, forced: false, ...over });

/** A machine and a clock, stepped by the tests; `types` lists the action types of the last step. */
export class M {
  m: MirrorMachine;
  nowMs = 0;
  last: MirrorAction[] = [];
  /** The cells of the transition table (mirror/transitions.ts) the last step took. */
  changes: readonly Move[] = [];
  constructor(c: MirrorMachineConfig) {
    this.m = createMirrorMachine(c, 0);
  }
  step(ev: MirrorEvent, advanceMs = 1): MirrorAction[] {
    this.nowMs += advanceMs;
    const r = mirrorStep(this.m, ev, this.nowMs);
    this.m = r.state;
    this.last = r.actions;
    this.changes = r.changes;
    return r.actions;
  }
  get types(): string[] {
    return this.last.map((a) => (a.type === 'transition' ? `${a.from}->${a.to}` : a.type === 'run_script' ? `${a.script}` : a.type === 'witness' ? `witness ${a.contend ? 'contend' : 'release'}` : a.type === 'record_data' ? `record ${a.status}` : a.type === 'dirty_log' ? `dirty_log ${a.op}` : a.type === 'reintegrate' ? `reintegrate ${a.role}` : a.type));
  }
  cmd(command: Extract<MirrorEvent, { type: 'command' }>['command']) {
    return this.step({ type: 'command', command, cause: 'test' });
  }
  done(script: 'start_prim' | 'stop_prim', how: 'ok' | 'fail' | 'timeout' = 'ok') {
    return this.step({ type: 'script_done', script, ok: how === 'ok', exitCode: how === 'ok' ? 0 : how === 'fail' ? 1 : null, timedOut: how === 'timeout' });
  }
  peer(state: MirrorState, over: Partial<PeerView> = {}) {
    // The same generation as ours unless told (an in-sync pair shares one).
    return this.step({ type: 'peer', peer: view(state, { generation: this.m.generation, ...over }) });
  }
  verdict(allowed: boolean, validForMs = 1000) {
    return this.step({ type: 'witness', allowed, validUntilMs: allowed ? this.nowMs + 1 + validForMs : 0, detail: allowed ? 'lease n1' : 'lease n2', epoch: this.m.witnessEpoch });
  }
  repl(what: 'link_up' | 'link_broken' | 'reintegration_done') {
    return this.step({ type: 'replication', what });
  }
  probe(checker: string, ok: boolean) {
    return this.step({ type: 'probe', checker, ok, detail: ok ? 'fine' : 'broken' });
  }
}

// Ways to reach each state (the peer is n2; n1 wins ties by name).
export function stopped(witness: WitnessKind = 'none', checkers: MirrorCheckerConfig[] = []): M {
  const x = new M(cfg({ witness, checkers }));
  x.step({ type: 'data', status: 'up-to-date' });
  return x;
}
export function waiting(witness: WitnessKind = 'none'): M {
  const x = new M(cfg({ witness }));
  x.step({ type: 'data', status: 'stale' }); // not electable: stays WAIT
  x.cmd('start');
  assert.equal(x.m.state, 'WAIT');
  return x;
}
export function alone(witness: WitnessKind = 'none', checkers: MirrorCheckerConfig[] = []): M {
  const x = stopped(witness, checkers);
  x.cmd('start');
  if (witness !== 'none') x.verdict(true, 10_000);
  x.done('start_prim');
  assert.equal(x.m.state, 'ALONE');
  return x;
}
export function prim(witness: WitnessKind = 'none'): M {
  const x = alone(witness);
  x.repl('link_up');
  x.peer('WAIT', { dataUpToDate: false, eligible: false });
  assert.deepEqual(x.types, ['reintegrate source']);
  x.repl('reintegration_done');
  x.peer('SECOND');
  assert.equal(x.m.state, 'PRIM');
  return x;
}
export function second(witness: WitnessKind = 'none'): M {
  const x = stopped(witness);
  x.repl('link_up');
  x.peer('ALONE');
  x.cmd('start');
  assert.deepEqual(x.types, ['STOP->WAIT', 'run_checkers', 'record stale', 'reintegrate target']);
  x.peer('PRIM'); // the runtime feeds reintegration_done on this announcement
  x.repl('reintegration_done');
  assert.equal(x.m.state, 'SECOND');
  return x;
}
