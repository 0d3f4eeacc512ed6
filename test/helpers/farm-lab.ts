// Helpers of the farm lab tests: a node's view of a farm module through its API; keep-alive clients.
import type { FarmStatus } from '../../farm/runtime.js';
import type { Lab } from '../../top/lab/index.js';
import { nodeApi } from './cluster.js';

/** GET /api/v1/modules/<module> on `node`: its state and farm status, or undefined when it does not answer. */
export async function moduleView(lab: Lab, node: string, module = 'web'): Promise<{ state?: string; farm?: FarmStatus } | undefined> {
  try {
    const r = await nodeApi<{ state?: string; farm?: FarmStatus }>(lab, node, 'GET', `/api/v1/modules/${module}`);
    return r.status === 200 ? r.body : undefined;
  } catch {
    return undefined;
  }
}

export async function farmStatus(lab: Lab, node: string, module = 'web'): Promise<FarmStatus | undefined> {
  return (await moduleView(lab, node, module))?.farm;
}

// The keep-alive clients live with the lab (croft lab chaos drives them too).
export { type Conn, Holders } from '../../top/lab/holders.js';
