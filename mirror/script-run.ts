// One run of a mirror module's start_prim or stop_prim, through the effects' runScript: its
// environment (which node, module, state, peer, directories, VIP), its output in the log, its end
// logged. The runtime feeds the result to the machine as `script_done`.
import type { ClusterConfig, ModuleConfig } from '../src/config/types.js';
import type { ModuleLogger } from '../src/module/types.js';
import type { MirrorEffects } from './effects.js';
import type { MirrorScript, MirrorState } from './types.js';

export interface MirrorScriptRun {
  module: ModuleConfig;
  cluster: ClusterConfig;
  node: string;
  peer: string;
  log: ModuleLogger;
  runScript: MirrorEffects['runScript'];
}

export interface MirrorScriptResult {
  ok: boolean;
  exitCode: number | null;
  timedOut: boolean;
}

/**
 * Runs `script` for a node `entering` a state. `mountFailed`: the directories are not mounted, so
 * start_prim fails without running (the application would write outside the mirror). A module
 * without the script succeeds, answered after the step that launched it, as a real script is.
 */
export async function runMirrorScript(o: MirrorScriptRun, script: MirrorScript, entering: MirrorState, mountFailed: boolean): Promise<MirrorScriptResult> {
  const module = o.module.name;
  const mirror = o.module.mirror!;
  const file = script === 'start_prim' ? o.module.scripts.startPrim : o.module.scripts.stopPrim;
  if (script === 'start_prim' && mountFailed) {
    await Promise.resolve();
    return { ok: false, exitCode: null, timedOut: false };
  }
  if (file === undefined) {
    await Promise.resolve();
    return { ok: true, exitCode: 0, timedOut: false };
  }
  o.log.info({ module, script, path: file }, 'script start');
  const r = await o.runScript({
    path: file,
    args: [],
    env: {
      CROFT_NODE: o.node,
      CROFT_MODULE: module,
      CROFT_STATE: entering,
      CROFT_SCRIPT: script,
      CROFT_CLUSTER: o.cluster.name,
      CROFT_PEER: o.peer,
      CROFT_MIRROR_DIRS: mirror.dirs.join(':'),
      ...Object.fromEntries(mirror.dirs.map((d, i) => [`CROFT_MIRROR_DIR_${i}`, d])),
      ...(mirror.vip ? { CROFT_VIP: mirror.vip, CROFT_VIPS: mirror.vips.join(' ') } : {}),
    },
    timeoutMs: o.module.scripts.timeoutMs,
    killGraceMs: o.module.scripts.killGraceMs,
    onOutput: (stream, line) => o.log.info({ module, script, stream }, line),
  });
  const how = { module, script, exitCode: r.exitCode, signal: r.signal, durationMs: Math.round(r.durationMs) };
  if (r.ok) o.log.info(how, 'script ok');
  else if (r.timedOut) o.log.error({ ...how, code: 'CROFT_ERR_SCRIPT_TIMEOUT' }, `${script} ran past ${o.module.scripts.timeoutMs} ms and was killed`);
  else o.log.error({ ...how, code: 'CROFT_ERR_SCRIPT_FAILED', error: r.error }, `${script} failed`);
  return { ok: r.ok, exitCode: r.exitCode, timedOut: r.timedOut };
}
