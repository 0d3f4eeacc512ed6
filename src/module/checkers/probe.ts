// What every checker type provides: one probe, cancellable. The CheckerRunner (runner.ts) aborts
// the signal when the checker's timeoutMs is reached; a probe must then end quickly and free what
// it holds (socket, child process).
export interface ProbeResult {
  ok: boolean;
  /** Short human text: why it failed, or what it saw ("HTTP 200", "connected"). */
  detail: string;
}

export type Probe = (signal: AbortSignal) => Promise<ProbeResult>;

/** Text of an abort or error, for details. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}
