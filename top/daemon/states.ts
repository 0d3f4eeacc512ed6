// Ordering of module states when several nodes answer for one module ("any" node).
const rank: Record<string, number> = { PRIM: 5, ALONE: 5, UP: 5, SECOND: 3, WAIT: 1, STOP: 0 };

/** The most serving state among `states` (UP/PRIM/ALONE > SECOND > WAIT > STOP). */
export function bestState(states: string[]): string {
  let best = states[0] ?? 'STOP';
  for (const s of states) if ((rank[s] ?? 0) > (rank[best] ?? 0)) best = s;
  return best;
}

/** States in which a node serves a module (its /health answers 200). */
export const servingStates: ReadonlySet<string> = new Set(['UP', 'PRIM', 'ALONE']);
