// settle: after every event, the mirror machine's next steps towards its goal (machine.ts runs it
// at the end of mirrorStep). Every state change is decided here, from the draft the event handler
// left and the queries of election.ts: which state is wanted next and why (a Cause). The moves
// themselves, what each cause does around them and in which order, are the table of
// transitions.ts: `change` checks each move against it and applies it.
import { abortReintegration, abortStaleTarget, releaseResources, runScript, setData, startWritingAlone, type Draft } from './draft.js';
import { aloneGeneration, behind, chosen, isPrimary, verdictValid, winsTie, witnessHoldsNext } from './election.js';
import { change } from './transitions.js';
import type { MirrorAction, MirrorState } from './types.js';

// ---------------------------------------------------------------------------------------------
// settle: the next steps towards the goal

export function settle(d: Draft, nowMs: number, out: MirrorAction[]): void {
  if (d.forced && behind(d)) {
    d.forced = false;
    d.cause = `croft prim withdrawn: the peer has generation ${Math.max(d.peerGeneration, d.peer?.generation ?? 0)}, newer than when it was run (${d.forcedOver})`;
  }
  abortStaleTarget(d, out);
  giveUpIfNeeded(d, nowMs, out);
  if (d.state === 'PRIM') primaryWithoutReplica(d, nowMs, out);
  if (d.state === 'ALONE' && d.awaitingWitness && witnessHoldsNext(d)) {
    d.cause = `witness holds generation ${aloneGeneration(d)}: writing alone`;
    startWritingAlone(d, out);
  }
  if (d.finished === 'source' && d.state === 'ALONE') change(d, nowMs, out, 'PRIM', 'peer_in_sync');
  // prim_preference brings the application back to the preferred node after a reintegration, once
  // it is an in-sync SECOND that may take over (as swap): handing over earlier, before the target
  // saw us PRIM (its reintegration_done comes from that announcement, mirror/runtime.ts), would
  // leave it stale and nobody primary.
  if (d.state === 'PRIM' && !d.yielding && d.cfg.primPreference === d.cfg.peer && d.target === 'run' && d.peer?.state === 'SECOND' && d.peer.eligible) {
    d.yielding = true;
    d.cause = `prim_preference ${d.cfg.peer}: handing over after reintegration`;
  }
  if (d.running === null) settleIdle(d, nowMs, out);
  reintegrationSource(d, out);
  updateWitness(d, nowMs, out);
}

/**
 * give_up: a primary without a valid verdict, or that lost the tie-break against a peer that runs
 * the application too (a healed split brain), gives up now, even while a script runs: the peer may
 * already be writing.
 */
function giveUpIfNeeded(d: Draft, nowMs: number, out: MirrorAction[]): void {
  if (!isPrimary(d.state)) return;
  const lapsed = !verdictValid(d, nowMs);
  const lost = d.peer !== null && isPrimary(d.peer.state) && !winsTie(d, d.peer);
  if (!lapsed && !lost) return;
  d.cause = lapsed ? `witness verdict lapsed (${d.verdict.detail}): giving up` : `peer is ${d.peer!.state} too and wins the tie-break: giving up`;
  change(d, nowMs, out, 'WAIT', 'give_up');
}

/** replica_lost: a PRIM whose SECOND is gone (peer lost, link broken, peer stopped). */
function primaryWithoutReplica(d: Draft, nowMs: number, out: MirrorAction[]): void {
  if (d.peer !== null && d.link && d.peer.state !== 'STOP') return;
  d.cause = d.peer === null ? 'peer lost' : !d.link ? 'replication link broken' : 'peer stopped';
  change(d, nowMs, out, 'ALONE', 'replica_lost');
}

/** No script runs: take the next step. */
function settleIdle(d: Draft, nowMs: number, out: MirrorAction[]): void {
  if (isPrimary(d.state)) {
    if (d.target === 'run' && chosen(d, nowMs)) {
      if (d.app !== 'stopped' && (d.restartWanted || d.app === 'dirty')) {
        d.restartWanted = false;
        return runScript(d, out, 'stop_prim', d.state); // restart here: stop_prim, then start_prim
      }
      d.restartWanted = false;
      if (d.app === 'stopped') runScript(d, out, 'start_prim', d.state);
      return;
    }
    // stop or step_down, gracefully: stop_prim first (its script_done brings us back here), then
    // the change gives back the VIP and the mount before it leaves the state.
    const leadsTo: MirrorState = d.target === 'stop' ? 'STOP' : 'WAIT';
    if (d.app !== 'stopped') return runScript(d, out, 'stop_prim', leadsTo);
    if (d.target === 'stop') return change(d, nowMs, out, 'STOP', 'stop');
    change(d, nowMs, out, 'WAIT', 'step_down');
  }
  // Not primary. After a give-up the application may still run (fenced): stop it, release.
  if (d.app !== 'stopped') return runScript(d, out, 'stop_prim', d.state);
  releaseResources(d, out);
  if (d.target === 'stop') {
    if (d.state !== 'STOP') change(d, nowMs, out, 'STOP', 'stop');
    return;
  }
  if (d.state === 'STOP') change(d, nowMs, out, 'WAIT', 'start');
  if (d.state === 'WAIT' && d.finished === 'target') return change(d, nowMs, out, 'SECOND', 'in_sync');
  // elected: the way up (from SECOND, a failover).
  const choose = chosen(d, nowMs) && verdictValid(d, nowMs) && witnessHoldsNext(d);
  if (d.state === 'SECOND') {
    const p = d.peer;
    const inSync = d.data === 'up-to-date' && d.link && p !== null && (p.state === 'PRIM' || (p.state === 'ALONE' && !d.peerWasPrim));
    if (inSync) return;
    if (choose) return change(d, nowMs, out, 'ALONE', 'elected');
    change(d, nowMs, out, 'WAIT', 'out_of_sync');
  }
  if (choose) return change(d, nowMs, out, 'ALONE', 'elected');
  // Become the target of the primary's reintegration. Not with up-to-date data of a newer
  // generation than the primary's (unless told `second`): the primary is behind and steps down
  // (`behind`), and this node's data is the one to keep (a healed split brain: the newer wins).
  const p = d.peer;
  if (p?.state === 'ALONE' && d.link && d.reintegrating === 'none') {
    if (d.data === 'up-to-date' && p.generation < d.generation && d.role !== 'second') {
      d.cause = `the peer ${d.cfg.peer} is ALONE with generation ${p.generation}, older than this node's ${d.generation}: it steps down`;
      return;
    }
    if (d.diverged) {
      out.push({ type: 'quarantine', reason: `the peer ${d.cfg.peer} is primary: what this node wrote alone is kept aside` });
      d.diverged = false;
    }
    if (d.forced) {
      d.forced = false; // the peer became primary first (a race with `croft prim`): its data wins
      d.cause = `croft prim withdrawn: the peer ${d.cfg.peer} became ALONE first`;
    }
    // A target never claims a generation above its source's: a newer branch it held is given up
    // (quarantined above, or overwritten), and announcing it would make the source believe it is
    // behind and step down, leaving nobody primary (as DRBD's sync target takes the source's UUID).
    if (d.generation > p.generation) setData(d, 'stale', out, p.generation, p.generation);
    else setData(d, 'stale', out);
    d.reintegrating = 'target';
    d.targetOf = p.generation;
    out.push({ type: 'reintegrate', role: 'target' });
    return;
  }
  if (d.state === 'WAIT' && d.reintegrating === 'none') d.cause = waitCause(d, nowMs) ?? d.cause;
}

/**
 * Why a started node stays WAIT when nobody will elect it on its own: the person's way out is
 * `croft prim` on the node whose data is the reference. Null while waiting is expected to end.
 */
function waitCause(d: Draft, nowMs: number): string | null {
  if (d.target !== 'run' || (d.peer !== null && (isPrimary(d.peer.state) || d.peer.eligible)) || chosen(d, nowMs)) return null;
  const prim = 'croft prim on the node whose data is the reference';
  if (d.data === 'unknown') return `no record of this node's data: waiting for the peer, or ${prim}`;
  if (d.data === 'stale') return `data stale (a reintegration into this node did not finish): waiting for the peer, or ${prim}`;
  if (behind(d)) {
    const theirs = Math.max(d.peerGeneration, d.peer?.generation ?? 0);
    return `data behind: the peer wrote generation ${theirs}, this node holds ${d.generation}: waiting for the peer, or ${prim}`;
  }
  return null;
}

function reintegrationSource(d: Draft, out: MirrorAction[]): void {
  const p = d.peer;
  if (d.reintegrating === 'source' && (d.state !== 'ALONE' || !d.link || p === null || p.state === 'STOP' || isPrimary(p.state))) {
    abortReintegration(d, out);
  }
  if (d.state === 'ALONE' && !d.awaitingWitness && d.reintegrating === 'none' && d.link && p?.state === 'WAIT' && d.mounted && !d.fenced) {
    d.reintegrating = 'source';
    out.push({ type: 'reintegrate', role: 'source' });
  }
}

/**
 * Contend where this node is primary (to hold a lease while it runs) or chosen to become it; stop
 * contending elsewhere, so that a redis lease is free for the peer.
 */
function updateWitness(d: Draft, nowMs: number, out: MirrorAction[]): void {
  const want = d.cfg.witness !== 'none' && (isPrimary(d.state) || (d.target === 'run' && chosen(d, nowMs)));
  // The generation to register: the one we write under, or the next one if we are to write alone.
  const generation = d.state === 'PRIM' || (d.state === 'ALONE' && !d.awaitingWitness) ? d.generation : aloneGeneration(d);
  // Contend again (a new epoch, the lease kept: the driver polls at once, the verdict we hold stays
  // valid until it lapses) when the generation to register grew: redis only, it stores it.
  const again = want && d.contending && d.cfg.witness === 'redis' && generation > d.contendGeneration;
  if (want === d.contending && !again) return;
  d.contending = want;
  if (want) {
    d.witnessEpoch++;
    d.contendGeneration = generation;
  } else {
    d.verdict = { allowed: false, validUntilMs: 0, detail: 'not contending' };
    d.contendGeneration = 0;
  }
  out.push({ type: 'witness', contend: want, epoch: d.witnessEpoch });
}
