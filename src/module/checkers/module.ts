// module checker: healthy when another module is in one of `states`, on this node (`local`), on a
// named node, or on any node (`any`). Pure evaluation against a getter that the daemon provides
// from membership (heartbeats carry every node's module states). For `any` the getter may return
// the states of all nodes as an array; it is ok when one of them is in `states`.
import type { Probe, ProbeResult } from './probe.js';

export type ModuleStateGetter = (module: string, node: string) => string | readonly string[] | undefined;

export function evaluateModuleChecker(cfg: { module: string; node: string; states: string[] }, getModuleState: ModuleStateGetter): ProbeResult {
  const got = getModuleState(cfg.module, cfg.node);
  const where = cfg.node === 'local' ? 'here' : cfg.node === 'any' ? 'on any node' : `on ${cfg.node}`;
  if (got === undefined || (Array.isArray(got) && got.length === 0)) return { ok: false, detail: `module ${cfg.module} unknown ${where}` };
  const seen: readonly string[] = typeof got === 'string' ? [got] : got;
  const ok = seen.some((s) => cfg.states.includes(s));
  return { ok, detail: `module ${cfg.module} ${seen.join('/')} ${where}` };
}

export function moduleProbe(cfg: { module: string; node: string; states: string[] }, getModuleState: ModuleStateGetter): Probe {
  return async () => evaluateModuleChecker(cfg, getModuleState);
}
