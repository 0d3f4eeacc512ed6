// Split-brain witnesses: drivers that tell the mirror machine whether this node may run the
// application without its peer (MirrorEvent `witness`). Two kinds:
//
// - PingWitness: "yes" when one of the addresses answers a ping. Both sides of a cut heartbeat link
//   that still reach the router both get "yes": it cannot give mutual exclusion, only keep a node
//   that is cut from everything from running alone (SafeKit's split-brain checker does the same).
// - RedisWitness: a lease in Redis, true mutual exclusion. Acquire with `SET key token NX PX ttl`;
//   renew with `WATCH key; GET key` and, only if the value is our token, `MULTI; PEXPIRE key ttl;
//   EXEC`: EXEC aborts if anyone touched the key after WATCH (a steal after expiry, a DEL), and
//   PEXPIRE answers 0 if the key expired meanwhile, so we never extend someone else's lease. Release
//   (close) is the same transaction with DEL. The verdict holds until the time we *sent* the winning
//   command plus ttl minus marginMs, on our own clock: Redis set the expiry after we sent it, so our
//   deadline is earlier than Redis's by at least the margin, which covers clock-rate drift and the
//   time until the machine acts (it gives up at validUntilMs; the driver ticks it then). The peer
//   can get the lease only after Redis expired it, hence after our verdict lapsed.
//   No Lua script (EVAL) is needed, and no client library: RESP is spoken over node:net.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import type { Witness, WitnessVerdict } from './types.js';

// ---------------------------------------------------------------------------------------------
// PingWitness

export interface PingWitnessOptions {
  addresses: string[];
  /** Per ping (`-W`). Default 1000 ms. */
  timeoutMs?: number;
  /** How long a "yes" stands without a new check. Default 3000 ms: a few check intervals. */
  validityMs?: number;
  /** Prefix of the ping command, e.g. ['ip', 'netns', 'exec', 'ns1'] (the lab, tests). */
  commandPrefix?: string[];
}

export class PingWitness implements Witness {
  private readonly addresses: string[];
  private readonly timeoutMs: number;
  private readonly validityMs: number;
  private readonly prefix: string[];
  private closed = false;

  constructor(opts: PingWitnessOptions) {
    if (opts.addresses.length === 0) throw new Error('PingWitness needs at least one address');
    this.addresses = [...opts.addresses];
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.validityMs = opts.validityMs ?? 3000;
    this.prefix = opts.commandPrefix ?? [];
  }

  async check(): Promise<WitnessVerdict> {
    const t0 = Date.now();
    if (this.closed) return { allowed: false, detail: 'witness closed', validUntilMs: 0 };
    const results = await Promise.all(this.addresses.map((a) => this.pingOnce(a)));
    const answered = this.addresses.filter((_, i) => results[i]);
    if (answered.length === 0) return { allowed: false, detail: `no answer from ${this.addresses.join(', ')}`, validUntilMs: 0 };
    return { allowed: true, detail: `${answered.join(', ')} answered`, validUntilMs: t0 + this.validityMs };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private pingOnce(address: string): Promise<boolean> {
    const seconds = (Math.max(this.timeoutMs, 100) / 1000).toFixed(1);
    const argv = [...this.prefix, 'ping', '-n', '-q', '-c1', '-W', seconds, address];
    return new Promise((resolve) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
      // ping bounds itself with -W; this bounds a ping that hangs on name resolution or the like.
      const guard = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs + 1000);
      child.on('error', () => {
        clearTimeout(guard);
        resolve(false);
      });
      child.on('exit', (code) => {
        clearTimeout(guard);
        resolve(code === 0);
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// RESP (Redis serialization protocol, version 2): just what the lease needs.

export type RespReply = string | number | null | RespError | RespReply[];

export class RespError extends Error {}

/** Parses one reply at `pos`; returns it and the position after it, or null when incomplete. */
export function parseResp(buf: Buffer, pos: number): { reply: RespReply; next: number } | null {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[pos]!);
  const line = buf.toString('utf8', pos + 1, eol);
  const after = eol + 2;
  switch (kind) {
    case '+':
      return { reply: line, next: after };
    case '-':
      return { reply: new RespError(line), next: after };
    case ':':
      return { reply: Number(line), next: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { reply: null, next: after };
      if (buf.length < after + len + 2) return null;
      return { reply: buf.toString('utf8', after, after + len), next: after + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { reply: null, next: after };
      const items: RespReply[] = [];
      let p = after;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (r === null) return null;
        items.push(r.reply);
        p = r.next;
      }
      return { reply: items, next: p };
    }
    default:
      throw new RespError(`unexpected RESP type byte ${JSON.stringify(kind)}`);
  }
}

export function encodeResp(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

/** One connection; commands are pipelined and answered in order (RESP guarantees it). */
class RespConnection {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: { resolve: (r: RespReply) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static connect(host: string, port: number, timeoutMs: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect timeout after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new RespConnection(socket));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  get broken(): boolean {
    return this.failure !== null;
  }

  command(args: readonly string[]): Promise<RespReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(encodeResp(args));
    });
  }

  destroy(): void {
    this.fail(new Error('connection destroyed'));
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    for (;;) {
      let r: ReturnType<typeof parseResp>;
      try {
        r = parseResp(this.buf, pos);
      } catch (e) {
        this.fail(e as Error);
        this.socket.destroy();
        return;
      }
      if (r === null) break;
      pos = r.next;
      this.waiting.shift()?.resolve(r.reply);
    }
    this.buf = this.buf.subarray(pos);
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const w of this.waiting.splice(0)) w.reject(e);
  }
}

// ---------------------------------------------------------------------------------------------
// RedisWitness

export interface RedisWitnessOptions {
  host: string;
  port: number;
  /** The lease key, one per mirror module (e.g. `croft:<cluster>:<module>:lease`). */
  key: string;
  /** Lease duration. The peer can take over this long after we stopped renewing. */
  ttlMs: number;
  /** This node's name (in the lease value, for logs: who holds it). */
  node: string;
  /** Our verdict ends this long before Redis's expiry. Default ttl/5 (clock drift, acting time). */
  marginMs?: number;
  /** Bound on connecting and on each check's round trips. Default min(1000, ttl/4). */
  timeoutMs?: number;
}

export class RedisWitness implements Witness {
  private readonly o: Required<RedisWitnessOptions>;
  /** Unique per witness instance: a restarted daemon never mistakes an old lease for its own. */
  readonly token: string;
  private conn: RespConnection | null = null;
  /** End of our lease's validity on our clock (0: not held). */
  private heldUntilMs = 0;
  private closed = false;

  constructor(opts: RedisWitnessOptions) {
    const marginMs = opts.marginMs ?? Math.floor(opts.ttlMs / 5);
    if (!(opts.ttlMs > 0) || !(marginMs >= 0) || marginMs >= opts.ttlMs) throw new Error('RedisWitness: need ttlMs > marginMs >= 0');
    this.o = { ...opts, marginMs, timeoutMs: opts.timeoutMs ?? Math.min(1000, Math.floor(opts.ttlMs / 4)) };
    this.token = `${opts.node}:${randomUUID()}`;
  }

  async check(): Promise<WitnessVerdict> {
    if (this.closed) return { allowed: false, detail: 'witness closed', validUntilMs: 0 };
    const t0 = Date.now();
    try {
      const won = await this.withTimeout(this.acquireOrRenew());
      if (won === true) {
        this.heldUntilMs = t0 + this.o.ttlMs - this.o.marginMs;
        return { allowed: true, detail: `lease ${this.o.key} held by ${this.o.node}`, validUntilMs: this.heldUntilMs };
      }
      this.heldUntilMs = 0;
      return { allowed: false, detail: won === null ? `lease ${this.o.key} lost` : `lease ${this.o.key} held by ${holderName(won)}`, validUntilMs: 0 };
    } catch (e) {
      this.dropConnection();
      // The lease we hold stays ours until it lapses on our clock: an error does not extend it, and
      // does not cut it short either (Redis cannot give it away before its expiry).
      const now = Date.now();
      const allowed = now < this.heldUntilMs;
      const why = `redis ${this.o.host}:${this.o.port} unreachable: ${(e as Error).message}`;
      return { allowed, detail: allowed ? `${why}; lease held until ${new Date(this.heldUntilMs).toISOString()}` : why, validUntilMs: allowed ? this.heldUntilMs : 0 };
    }
  }

  /** Releases the lease if we hold it (never someone else's), then disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.heldUntilMs > 0) await this.withTimeout(this.release());
    } catch {
      // Unreachable: the lease expires by itself after ttl.
    }
    this.heldUntilMs = 0;
    if (this.conn) {
      try {
        await this.withTimeout(this.conn.command(['QUIT']));
      } catch {
        // closing anyway
      }
    }
    this.dropConnection();
  }

  /** true: ours (acquired or renewed); a string: the holder's value; null: lost in a race. */
  private async acquireOrRenew(): Promise<true | string | null> {
    const c = await this.connection();
    const { key, ttlMs } = this.o;
    if (this.heldUntilMs > 0) {
      await expectOk(c.command(['WATCH', key]));
      const v = await c.command(['GET', key]);
      if (v === this.token) {
        await expectOk(c.command(['MULTI']));
        await c.command(['PEXPIRE', key, String(ttlMs)]); // QUEUED
        const r = await c.command(['EXEC']);
        if (Array.isArray(r) && r[0] === 1) return true;
        return null; // touched after WATCH, or expired: not ours any more
      }
      await c.command(['UNWATCH']);
      if (v !== null) return typeof v === 'string' ? v : null;
      // Expired (we did not renew in time): try to take it again like anyone else.
    }
    const r = await c.command(['SET', key, this.token, 'NX', 'PX', String(ttlMs)]);
    if (r instanceof RespError) throw r;
    if (r === 'OK') return true;
    const holder = await c.command(['GET', key]);
    return typeof holder === 'string' ? holder : null;
  }

  private async release(): Promise<void> {
    const c = await this.connection();
    const { key } = this.o;
    await expectOk(c.command(['WATCH', key]));
    const v = await c.command(['GET', key]);
    if (v !== this.token) {
      await c.command(['UNWATCH']);
      return;
    }
    await expectOk(c.command(['MULTI']));
    await c.command(['DEL', key]);
    await c.command(['EXEC']);
  }

  private async connection(): Promise<RespConnection> {
    if (this.conn && !this.conn.broken) return this.conn;
    this.dropConnection();
    this.conn = await RespConnection.connect(this.o.host, this.o.port, this.o.timeoutMs);
    return this.conn;
  }

  private dropConnection(): void {
    this.conn?.destroy();
    this.conn = null;
  }

  private withTimeout<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }
}

async function expectOk(p: Promise<RespReply>): Promise<void> {
  const r = await p;
  if (r instanceof RespError) throw r;
  if (r !== 'OK') throw new Error(`unexpected reply ${JSON.stringify(r)}`);
}

function holderName(value: string): string {
  const i = value.lastIndexOf(':');
  return i > 0 ? value.slice(0, i) : value;
}
