// Split-brain witnesses: drivers that tell the mirror machine whether this node may run the
// application without its peer (MirrorEvent `witness`). Two kinds:
//
// - PingWitness: "yes" when one of the addresses answers a ping. Both sides of a cut heartbeat link
//   that still reach the router both get "yes": it cannot give mutual exclusion, only keep a node
//   that is cut from everything from running alone (SafeKit's split-brain checker does the same).
//   It stores nothing: no data generation (the context is ignored).
// - RedisWitness: a lease in Redis, true mutual exclusion, and the data generations. Acquire with
//   `SET key "<token> <generation>" NX PX ttl`; renew with a Lua script that, only if the value is
//   our token, sets it again with PX ttl (so we never extend someone else's lease: the compare and
//   the set are one atomic step). Release (close) is `WATCH key; GET key` and, only if the value is
//   our token, `MULTI; DEL key; EXEC` (EXEC aborts if anyone touched the key after WATCH). The
//   verdict holds until the time we *sent* the first command of the check plus ttl minus marginMs,
//   on our own clock: Redis set the expiry after we sent it, so our deadline is earlier than
//   Redis's by at least the margin, which covers clock-rate drift and the time until the machine
//   acts (it gives up at validUntilMs; the driver ticks it then). The peer can get the lease only
//   after Redis expired it, hence after our verdict lapsed.
//
//   Generations (mirror/types.ts DataGenerations). Beside the lease, a hash `<key>:generations`
//   (no expiry) holds per node the highest generation it registered: the same Lua step that renews
//   our lease raises our field to ctx.generation, so a generation is registered only while we hold
//   the lease, and a verdict that allows always means "the witness holds ctx.generation for us"
//   (an error answer allows only a generation registered before). The machine writes alone under
//   a generation only after such a verdict (mirror/machine.ts, "the witness rule"). Every check
//   reads the hash after taking or renewing the lease and answers peerGeneration: the highest
//   generation another node registered (or its lease carries). Why it closes the gap: a node that
//   wrote alone under g registered g while holding the lease; the peer can take the lease only
//   after it expired, and reads g in the same step, so it knows it is behind even if it never heard
//   the writer. Redis must keep the hash across its own restarts (appendonly yes): a lost hash is
//   a lost record of who wrote last.
//   Client: ioredis, configured so that a check always ends in a verdict within timeoutMs (see
//   redisClient below).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
// ioredis is loaded when a redis witness first connects, not with the daemon (~15 MB of RSS that
// a ping witness or a farm never needs).
import type { Redis } from 'ioredis';
import type { Witness, WitnessContext, WitnessVerdict } from './types.js';

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

  async check(_ctx?: WitnessContext): Promise<WitnessVerdict> {
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
// RedisWitness

export interface RedisWitnessOptions {
  host: string;
  port: number;
  /** The lease key, one per mirror module (e.g. `croft:<cluster>:<module>:lease`). */
  key: string;
  /** Lease duration. The peer can take over this long after we stopped renewing. */
  ttlMs: number;
  /** This node's name (in the lease value, for logs: who holds it; and our field of the generations). */
  node: string;
  /** Our verdict ends this long before Redis's expiry. Default ttl/5 (clock drift, acting time). */
  marginMs?: number;
  /** Bound on connecting and on each check's round trips. Default min(1000, ttl/4). */
  timeoutMs?: number;
  /** The hash of the nodes' highest registered generations. Default `<key>:generations`. */
  generationsKey?: string;
}

/**
 * Renew and register, atomically: if the lease (KEYS[1]) carries our token (ARGV[1]), set it again
 * to ARGV[2] ("<token> <generation>") with PX ARGV[3], and raise our field ARGV[4] of the
 * generations hash (KEYS[2]) to ARGV[5]. Answers {1 if ours else 0, the lease's value or '', the
 * hash as HGETALL gives it}; read after the renewal, so a node that just took the lease sees every
 * generation registered by the previous holder.
 */
const RENEW_AND_REGISTER = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  local own = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0') or 0
  if tonumber(ARGV[5]) > own then redis.call('HSET', KEYS[2], ARGV[4], ARGV[5]) end
  return {1, v, redis.call('HGETALL', KEYS[2])}
end
return {0, v or '', redis.call('HGETALL', KEYS[2])}
`;

interface HoldReply {
  ours: boolean;
  /** The lease's value ('' when free). */
  value: string;
  /** The generations hash: node -> highest registered generation. */
  generations: Map<string, number>;
}

/**
 * An ioredis client for a witness, where a slow answer is worse than a no: the machine must get a
 * verdict within timeoutMs even when Redis is down or silent.
 * - lazyConnect: nothing happens until the first check (constructing a witness does no I/O).
 * - connectTimeout / commandTimeout = timeoutMs: neither a SYN nor a command waits longer (the
 *   check's own timer bounds the sum).
 * - enableOfflineQueue false, maxRetriesPerRequest 0, retryStrategy null: a command never waits for
 *   a reconnection and the client never reconnects by itself (no timer left behind, so close()
 *   leaves no handle); the next check makes a new client: the check interval is the retry loop.
 * - enableReadyCheck false: the ready check (INFO, retried while Redis loads) could wait past the
 *   timeout; a loading Redis answers our commands with -LOADING, which is an error answer.
 * - disconnectTimeout = timeoutMs: after disconnect() ioredis half-closes the socket and destroys it
 *   only if the server has not closed it by then (its default waits 2 s, keeping the process alive).
 */
function redisClient(RedisClass: typeof Redis, host: string, port: number, timeoutMs: number): Redis {
  const client = new RedisClass({
    host,
    port,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    disconnectTimeout: timeoutMs,
    enableReadyCheck: false,
    // No CLIENT SETINFO: two more round trips, and a read of ioredis's package.json, per connection.
    disableClientInfo: true,
    autoResubscribe: false,
  });
  // Errors reach us as rejected commands; without a listener ioredis would print them.
  client.on('error', () => {});
  return client;
}

export class RedisWitness implements Witness {
  private readonly o: Required<RedisWitnessOptions>;
  /** Unique per witness instance: a restarted daemon never mistakes an old lease for its own. */
  readonly token: string;
  private client: Redis | null = null;
  /** End of our lease's validity on our clock (0: not held). */
  private heldUntilMs = 0;
  /** The highest generation Redis acknowledged for our field (what an error answer may allow). */
  private registered = 0;
  private closed = false;

  constructor(opts: RedisWitnessOptions) {
    const marginMs = opts.marginMs ?? Math.floor(opts.ttlMs / 5);
    if (!(opts.ttlMs > 0) || !(marginMs >= 0) || marginMs >= opts.ttlMs) throw new Error('RedisWitness: need ttlMs > marginMs >= 0');
    if (opts.node.includes(' ')) throw new Error('RedisWitness: a node name has no space (the lease value is "<token> <generation>")');
    this.o = {
      ...opts,
      marginMs,
      timeoutMs: opts.timeoutMs ?? Math.min(1000, Math.floor(opts.ttlMs / 4)),
      generationsKey: opts.generationsKey ?? `${opts.key}:generations`,
    };
    this.token = `${opts.node}:${randomUUID()}`;
  }

  /**
   * Take or renew the lease, registering ctx.generation with it (none without a context). Allowed
   * means: the lease is ours until validUntilMs, and the witness holds ctx.generation for us.
   */
  async check(ctx?: WitnessContext): Promise<WitnessVerdict> {
    if (this.closed) return { allowed: false, detail: 'witness closed', validUntilMs: 0 };
    const generation = ctx?.generation ?? 0;
    if (!Number.isSafeInteger(generation) || generation < 0) throw new Error(`RedisWitness: bad generation ${generation}`);
    const t0 = Date.now();
    try {
      const r = await this.withTimeout(this.hold(generation));
      const peerGeneration = this.peerGeneration(r);
      const peer = peerGeneration === undefined ? {} : { peerGeneration };
      if (r.ours) {
        this.registered = Math.max(this.registered, generation, r.generations.get(this.o.node) ?? 0);
        this.heldUntilMs = t0 + this.o.ttlMs - this.o.marginMs;
        return { allowed: true, detail: `lease ${this.o.key} held by ${this.o.node} (generation ${generation})`, validUntilMs: this.heldUntilMs, ...peer };
      }
      this.heldUntilMs = 0;
      const detail = r.value === '' ? `lease ${this.o.key} lost` : `lease ${this.o.key} held by ${holderName(r.value)} (generation ${holderGeneration(r.value)})`;
      return { allowed: false, detail, validUntilMs: 0, ...peer };
    } catch (e) {
      this.dropClient();
      // The lease we hold stays ours until it lapses on our clock: an error does not extend it, and
      // does not cut it short either (Redis cannot give it away before its expiry). But it allows
      // only a generation Redis already holds for us: "allowed" promises the registration too.
      const now = Date.now();
      const why = `redis ${this.o.host}:${this.o.port} unreachable: ${(e as Error).message}`;
      if (now >= this.heldUntilMs) return { allowed: false, detail: why, validUntilMs: 0 };
      if (generation > this.registered) return { allowed: false, detail: `${why}; generation ${generation} not registered (${this.registered} is)`, validUntilMs: 0 };
      return { allowed: true, detail: `${why}; lease held until ${new Date(this.heldUntilMs).toISOString()}`, validUntilMs: this.heldUntilMs };
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
    const c = this.client;
    if (c && c.status === 'ready') {
      try {
        await this.withTimeout(c.quit());
      } catch {
        // closing anyway
      }
    }
    this.dropClient();
  }

  /** Renew (or take, when free) the lease, registering `generation`; read the generations. */
  private async hold(generation: number): Promise<HoldReply> {
    const c = await this.connection();
    if (this.heldUntilMs > 0) {
      const r = await this.renewAndRegister(c, generation);
      // Ours, or someone else's: done. Free (we did not renew in time): take it like anyone else.
      if (r.ours || r.value !== '') return r;
    }
    await c.set(this.o.key, `${this.token} ${generation}`, 'PX', this.o.ttlMs, 'NX');
    // Taken or not, one more atomic step registers the generation (if ours) and reads the hash.
    return this.renewAndRegister(c, generation);
  }

  private async renewAndRegister(c: Redis, generation: number): Promise<HoldReply> {
    const { key, generationsKey, ttlMs, node } = this.o;
    const r: unknown = await c.eval(RENEW_AND_REGISTER, 2, key, generationsKey, this.token, `${this.token} ${generation}`, String(ttlMs), node, String(generation));
    if (!Array.isArray(r) || r.length !== 3 || !Array.isArray(r[2])) throw new Error(`unexpected reply ${JSON.stringify(r)}`);
    const flat = r[2] as unknown[];
    const generations = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const g = Number(flat[i + 1]);
      if (typeof flat[i] === 'string' && Number.isSafeInteger(g)) generations.set(flat[i] as string, g);
    }
    return { ours: r[0] === 1, value: typeof r[1] === 'string' ? r[1] : '', generations };
  }

  /** The highest generation another node registered, or its lease carries; undefined when none. */
  private peerGeneration(r: HoldReply): number | undefined {
    let best: number | undefined;
    for (const [node, g] of r.generations) if (node !== this.o.node) best = Math.max(best ?? 0, g);
    if (r.value !== '' && holderName(r.value) !== this.o.node) {
      const g = holderGeneration(r.value);
      if (g !== null) best = Math.max(best ?? 0, g);
    }
    return best;
  }

  /** WATCH, GET and, only if the value is our token, MULTI DEL EXEC (EXEC aborts if the key changed). */
  private async release(): Promise<void> {
    const c = await this.connection();
    const { key } = this.o;
    const watched = await c.watch(key);
    if (watched !== 'OK') throw new Error(`unexpected reply ${JSON.stringify(watched)}`);
    const v = await c.get(key);
    if (v === null || tokenOf(v) !== this.token) {
      await c.unwatch();
      return;
    }
    await c.multi().del(key).exec();
  }

  private async connection(): Promise<Redis> {
    if (this.client && this.client.status === 'ready') return this.client;
    const { Redis: RedisClass } = await import('ioredis');
    // Again after the pause: what follows runs without one, as it did before the lazy import.
    if (this.client && this.client.status === 'ready') return this.client;
    this.dropClient();
    const c = redisClient(RedisClass, this.o.host, this.o.port, this.o.timeoutMs);
    this.client = c;
    // ioredis rejects a failed connect with "Connection is closed."; the socket's error says why.
    let failure: Error | null = null;
    c.on('error', (e: Error) => (failure ??= e));
    try {
      await c.connect();
    } catch (e) {
      throw failure ?? e;
    }
    return c;
  }

  /**
   * Closes the socket (no QUIT), never to reconnect. A client already ended is left alone: its
   * disconnect() would arm ioredis's disconnectTimeout timer on a socket whose close already
   * happened, a timer nothing clears.
   */
  private dropClient(): void {
    const c = this.client;
    this.client = null;
    if (c && c.status !== 'end') c.disconnect(false);
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

/** The lease value is "<node>:<uuid> <generation>". */
function tokenOf(value: string): string {
  const i = value.lastIndexOf(' ');
  return i > 0 ? value.slice(0, i) : value;
}

function holderName(value: string): string {
  const token = tokenOf(value);
  const i = token.lastIndexOf(':');
  return i > 0 ? token.slice(0, i) : token;
}

function holderGeneration(value: string): number | null {
  const i = value.lastIndexOf(' ');
  const g = i > 0 ? Number(value.slice(i + 1)) : NaN;
  return Number.isSafeInteger(g) ? g : null;
}
