import { TollgateError } from '../errors.js';
import { slotAllows } from '../slots.js';
import {
  STORE_CONTRACT_VERSION,
  type CounterOperation,
  type CounterResult,
  type CounterSlot,
  type CounterStore,
  type StoreCapabilities,
} from '../store.js';
import { CHECK_SCRIPT, CHECK_SCRIPT_SHA, COUNTERS_SCRIPT, COUNTERS_SCRIPT_SHA } from './script.js';

export { CHECK_SCRIPT, CHECK_SCRIPT_SHA, COUNTERS_SCRIPT, COUNTERS_SCRIPT_SHA };

/**
 * The part of an ioredis `Redis` or `Cluster` the counters use. Declared here so the types of
 * `@tollgate/core/redis` need no ioredis installed to compile; pass the real client.
 */
export interface RedisScriptClient {
  evalsha(sha: string, numKeys: number, ...args: string[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>;
  quit(): Promise<unknown>;
}

export interface RedisCountersOptions {
  /**
   * An ioredis client (or `Cluster`) you created; it is left open on `close()`.
   * @example redisCounters({ client: new Redis(process.env.REDIS_URL) })
   */
  client?: RedisScriptClient;
  /** A Redis URL; Tollgate creates and closes the client. Ignored when `client` is given. */
  url?: string;
  /** ioredis options for the client Tollgate creates from `url`, e.g. `{ enableAutoPipelining: true }`. */
  redisOptions?: Record<string, unknown>;
  /**
   * Prefix of every key, so several apps or test runs share one Redis. Default `'tollgate:'`.
   * Keys look like `tollgate:{customerId}:limitId@rev:windowStart:s`; the `{customerId}` hash tag
   * keeps one customer's keys in one Redis Cluster slot.
   */
  prefix?: string;
}

/** Events counted this recently are remembered by id, so a retried update is applied once. */
const RECENT_MS = String(15 * 60_000);

function tag(customerId: string): string {
  // A hash tag ends at the first '}', so braces inside an id are escaped.
  if (!/[%{}]/.test(customerId)) return customerId;
  return customerId.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The common part of a slot's keys: `prefix{customerId}:limitKey:windowStart`. */
function slotBase(prefix: string, slot: CounterSlot): string {
  return `${prefix}{${tag(slot.customerId)}}:${slot.limitKey}:${slot.windowStart}`;
}

/** A slot's keys: the common part and the state hash, for one window of one limit of one customer. */
interface SlotKeys {
  windowStart: number;
  base: string;
  s: string;
}

/** At most this many queued checks share one script run: small runs keep several in flight, so Redis and Node work at once. */
const MAX_CHECKS_PER_RUN = 4;

interface PendingCheck {
  now: number;
  slots: CounterSlot[];
  resolve: (result: CounterResult) => void;
  reject: (error: unknown) => void;
}

/** Customers whose slot keys are kept; past this many the cache starts over. */
const KEY_CACHE_CUSTOMERS = 4096;

/** A contribution as the script reads it: `` none (as JSON had it for a non-finite number too), `=<distinct value>`, or the number. */
function contribution(c: number | string | null): string {
  if (typeof c === 'number') return Number.isFinite(c) ? String(c) : '';
  return c === null ? '' : `=${c}`;
}

/** A number from the script: an integer reply, or a string carrying every digit. */
const num = (x: unknown): number => (typeof x === 'number' ? x : Number(x));

function reply(raw: unknown): unknown[] {
  if (!Array.isArray(raw)) throw new TollgateError('store_unavailable', `Unexpected reply from the Tollgate Redis script: ${String(raw)}`);
  return raw;
}

const missingOf = (out: unknown[]): number[] => out.slice(1).map(num);

/**
 * A number the check script read or computed: an integer reply, a `%.17g` string (Lua spells the
 * infinities `inf` and `-inf`), or null for a field the hash does not have.
 */
function stored(x: unknown): number | null {
  if (typeof x === 'number') return x;
  if (typeof x !== 'string') return null;
  const n = Number(x);
  if (n === n) return n;
  return x === 'inf' ? Infinity : x === '-inf' ? -Infinity : Number.NaN;
}

/** A check's answer from its part of the check script's reply, by the rules of `slots.ts`. */
function decideCheck(slots: CounterSlot[], out: unknown[]): CounterResult {
  if (Array.isArray(out[0])) return { allowed: false, slots: [], missing: (out[0] as unknown[]).map(num) };
  const n = slots.length;
  const results: CounterResult['slots'] = new Array(n);
  let allowed = true;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const s = slots[i];
    const a = s.aggregation;
    let used: number;
    let mn: number | null = null;
    let sum = 0;
    let count = 0;
    if (a === 'avg') {
      sum = stored(out[k++]) ?? 0;
      count = stored(out[k++]) ?? 0;
      used = count === 0 ? 0 : sum / count;
    } else {
      mn = stored(out[k++]);
      used = mn ?? 0;
    }
    const c = s.contribution;
    const isNew = a === 'unique' && typeof c === 'string' && out[k++] === 0;
    // A non-finite contribution (never one the engine sends) counts as none, as the script reads it.
    const ok = typeof c === 'number' && !Number.isFinite(c)
      ? s.mode === 'soft' || used < s.limitValue
      : slotAllows(s, { count, sum, min: mn, max: null, latest: null, latestAt: null, distinct: 0 }, used, isNew);
    if (!ok) allowed = false;
    results[i] = { used, allowed: ok };
  }
  return { allowed, slots: results };
}

/** Queued checks by customer: on a Redis Cluster only one customer's keys share a slot. */
function groupByCustomer(checks: PendingCheck[]): Iterable<PendingCheck[]> {
  const groups = new Map<string, PendingCheck[]>();
  for (const c of checks) {
    const id = c.slots[0].customerId;
    const group = groups.get(id);
    if (group === undefined) groups.set(id, [c]);
    else group.push(c);
  }
  return groups.values();
}

/**
 * Counters on Redis for many app instances, beside a ledger store:
 * `createTollgate({ store: postgresStore(...), counters: redisCounters({ url }) })`.
 *
 * Every check, reservation, record and release is one Lua script run by SHA (falling back to
 * EVAL when Redis has not seen it), atomic over every applicable limit of one customer. Keys
 * expire an hour after their window ends and holds after their ttl; there is no sweeper. A
 * counter Redis lost is rebuilt from the ledger before the next decision, so losing Redis loses
 * no usage.
 */
export function redisCounters(options: RedisCountersOptions = {}): CounterStore {
  return new RedisCounters(options);
}

class RedisCounters implements CounterStore {
  readonly capabilities: StoreCapabilities = {
    contract: STORE_CONTRACT_VERSION,
    ledger: false,
    counters: true,
    shared: true,
    durable: false,
    needsSeeding: true,
  };

  private client: RedisScriptClient | null;
  private readonly owned: boolean;
  private readonly prefix: string;
  private connecting: Promise<RedisScriptClient> | null = null;
  /** Slot keys by customer, then limit key: only the current window of each is kept. */
  private readonly keyCache = new Map<string, Map<string, SlotKeys>>();
  /** Checks waiting for this tick's script run. */
  private checks: PendingCheck[] = [];

  constructor(private readonly options: RedisCountersOptions) {
    if (!options.client && !options.url) {
      throw new TollgateError('invalid_request', 'redisCounters needs a client or a url, e.g. redisCounters({ url: "redis://127.0.0.1:6379" }).', {
        issues: [{ path: 'url', message: 'required when no client is given' }],
      });
    }
    this.client = options.client ?? null;
    this.owned = !options.client;
    this.prefix = options.prefix ?? 'tollgate:';
  }

  async init(): Promise<void> {
    await this.connect();
  }

  private connect(): Promise<RedisScriptClient> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      let mod: typeof import('ioredis');
      try {
        mod = await import('ioredis');
      } catch (cause) {
        throw new TollgateError('store_unavailable', 'redisCounters needs the ioredis package: npm install ioredis', { cause });
      }
      const RedisClass = (mod.default ?? (mod as unknown as { Redis: typeof mod.default }).Redis) as unknown as new (url: string, o: Record<string, unknown>) => RedisScriptClient & { on(event: string, listener: () => void): void };
      // No auto-pipelining by default: it defers every command a tick, which costs a sequential
      // decision more than the batching saves.
      const client = new RedisClass(this.options.url!, { maxRetriesPerRequest: 2, ...this.options.redisOptions });
      // Connection errors surface through the commands (and the engine's onStoreError policy).
      client.on('error', () => {});
      this.client = client;
      return this.client;
    })();
    return this.connecting;
  }

  /** Runs the counters script by SHA (EVAL when Redis has not seen it): `args` are the keys, then ARGV. */
  private run(numKeys: number, args: string[]): Promise<unknown[]> {
    return this.runScript(COUNTERS_SCRIPT_SHA, COUNTERS_SCRIPT, numKeys, args);
  }

  private runScript(sha: string, script: string, numKeys: number, args: string[]): Promise<unknown[]> {
    const client = this.client;
    if (!client) return this.connect().then(() => this.runScript(sha, script, numKeys, args));
    return client.evalsha(sha, numKeys, ...args).then(reply, (error: unknown) => {
      if (!String((error as Error)?.message).includes('NOSCRIPT')) throw error;
      return client.eval(script, numKeys, ...args).then(reply);
    });
  }

  /** The keys of a slot, built once per window (template strings and the hash tag show in a check's profile). */
  private keysOf(slot: CounterSlot): SlotKeys {
    let byLimit = this.keyCache.get(slot.customerId);
    if (byLimit === undefined) {
      if (this.keyCache.size >= KEY_CACHE_CUSTOMERS) this.keyCache.clear();
      byLimit = new Map();
      this.keyCache.set(slot.customerId, byLimit);
    }
    let keys = byLimit.get(slot.limitKey);
    if (keys === undefined || keys.windowStart !== slot.windowStart) {
      const base = slotBase(this.prefix, slot);
      keys = { windowStart: slot.windowStart, base, s: `${base}:s` };
      byLimit.set(slot.limitKey, keys);
    }
    return keys;
  }

  /**
   * A check: the check script reads each slot, and the decision is made here. Checks made in the
   * same tick share one script run (see {@link flushChecks}).
   */
  private check(now: number, slots: CounterSlot[]): Promise<CounterResult> {
    return new Promise((resolve, reject) => {
      if (this.checks.push({ now, slots, resolve, reject }) === 1) process.nextTick(this.flushChecks);
    });
  }

  /**
   * Sends the checks queued this tick. Under concurrency many are queued at once (the replies of
   * one socket read set off the next checks), and one script run then reads them all: Redis runs
   * one script instead of many and Node writes one command. Checks only read, so sharing a run
   * changes no answer. A Redis Cluster needs a run's keys in one slot: there checks share a run
   * only with checks of the same customer.
   */
  private readonly flushChecks = (): void => {
    const queued = this.checks;
    this.checks = [];
    for (const group of this.isCluster() ? groupByCustomer(queued) : [queued]) {
      for (let i = 0; i < group.length; i += MAX_CHECKS_PER_RUN) this.runChecks(group.slice(i, i + MAX_CHECKS_PER_RUN));
    }
  };

  private isCluster(): boolean {
    return (this.client as { isCluster?: boolean } | null)?.isCluster === true;
  }

  /** One run of the check script for `checks`; each gets its own answer or the run's error. */
  private runChecks(checks: PendingCheck[]): void {
    // KEYS: per check, s per slot, then d of each unique slot adding a distinct value.
    // ARGV: per check now, its slot count, and per slot its aggregation, or `=<value>` for a
    // unique slot adding one.
    const keys: string[] = [];
    const argv: string[] = [];
    for (const { now, slots } of checks) {
      argv.push(String(now), String(slots.length));
      for (const s of slots) {
        keys.push(this.keysOf(s).s);
        argv.push(s.aggregation === 'unique' && typeof s.contribution === 'string' ? `=${s.contribution}` : s.aggregation);
      }
      for (const s of slots) if (s.aggregation === 'unique' && typeof s.contribution === 'string') keys.push(`${this.keysOf(s).base}:d`);
    }
    this.runScript(CHECK_SCRIPT_SHA, CHECK_SCRIPT, keys.length, keys.concat(argv)).then(
      (out) => {
        for (let j = 0; j < checks.length; j++) {
          const { slots, resolve, reject } = checks[j];
          try {
            resolve(decideCheck(slots, reply(out[j])));
          } catch (error) {
            reject(error);
          }
        }
      },
      (error: unknown) => {
        for (const c of checks) c.reject(error);
      },
    );
  }

  apply(op: CounterOperation): Promise<CounterResult> {
    // A check goes straight to its script: an async wrapper here would cost a check three more microtask hops.
    return op.type === 'check' ? this.check(op.now, op.slots) : this.update(op);
  }

  /** Reservations, records, releases and seeds: the counters script. */
  private async update(op: Exclude<CounterOperation, { type: 'check' }>): Promise<CounterResult> {
    switch (op.type) {
      case 'reserve': {
        // KEYS: s per slot, then d of each slot adding a distinct value.
        // ARGV: op, now, holdId, expiresAt, then a, v, m, c per slot.
        const slots = op.slots;
        const n = slots.length;
        const args: string[] = [];
        let distinct: string[] | null = null;
        for (let i = 0; i < n; i++) {
          const s = slots[i];
          const keys = this.keysOf(s);
          args.push(keys.s);
          if (typeof s.contribution === 'string') (distinct ??= []).push(`${keys.base}:d`);
        }
        if (distinct) args.push(...distinct);
        const numKeys = args.length;
        args.push('reserve', String(op.now), op.holdId, String(op.expiresAt));
        for (let i = 0; i < n; i++) {
          const s = slots[i];
          args.push(s.aggregation, String(s.limitValue), s.mode, contribution(s.contribution));
        }
        const out = await this.run(numKeys, args);
        const flag = num(out[0]);
        if (flag === -1) return { allowed: false, slots: [], missing: missingOf(out) };
        const results: CounterResult['slots'] = new Array(n);
        for (let i = 0; i < n; i++) results[i] = { used: num(out[i * 2 + 1]), allowed: num(out[i * 2 + 2]) === 1 };
        return { allowed: flag === 1, slots: results };
      }
      case 'record': {
        // One script per customer: a customer's keys share a cluster slot, different customers may not.
        const groups = new Map<string, number[]>();
        op.items.forEach((item, i) => {
          const g = groups.get(item.event.customerId);
          if (g) g.push(i);
          else groups.set(item.event.customerId, [i]);
        });
        const slotResults: CounterResult['slots'][] = op.items.map(() => []);
        const alertLists: Array<Array<{ item: number; index: number; threshold: number; used: number }>> = [];
        const missing: Array<[number, number]> = [];
        const now = String(op.now);
        await Promise.all(
          [...groups.values()].map(async (indexes) => {
            // KEYS: s, d, e per slot of every item, then the hashes holding the items' holds.
            const keys: string[] = [];
            const argv: string[] = ['record', now, RECENT_MS];
            // Map the group's flat slot positions back to (item, slot).
            const positions: Array<[number, number]> = [];
            for (const i of indexes) {
              op.items[i].slots.forEach((s, j) => {
                const { base, s: sk } = this.keysOf(s);
                keys.push(sk, `${base}:d`, `${base}:e`);
                positions.push([i, j]);
              });
            }
            for (const i of indexes) {
              const item = op.items[i];
              const holdSlots = item.holdId ? item.holdSlots ?? [] : [];
              argv.push(item.event.id, String(item.event.timestamp), item.holdId ?? '', String(holdSlots.length));
              for (const s of holdSlots) argv.push(String(keys.push(this.keysOf(s).s)));
              argv.push(String(item.slots.length));
              for (const s of item.slots) {
                argv.push(s.aggregation, String(s.limitValue), contribution(s.contribution), s.windowEnd === null ? '' : String(s.windowEnd), String(s.thresholds.length));
                for (const t of s.thresholds) argv.push(String(t));
              }
            }
            const out = await this.run(keys.length, keys.concat(argv));
            if (num(out[0]) === -1) {
              for (const k of missingOf(out)) missing.push(positions[k]);
              for (const i of indexes) slotResults[i] = op.items[i].slots.map(() => ({ used: Number.NaN, allowed: true }));
              return;
            }
            const n = positions.length;
            for (let k = 0; k < n; k++) slotResults[positions[k][0]].push({ used: num(out[k + 1]), allowed: true });
            const alerts: (typeof alertLists)[number] = [];
            for (let a = n + 1; a + 2 < out.length; a += 3) {
              const [i, index] = positions[num(out[a])];
              alerts.push({ item: i, index, threshold: op.items[i].slots[index].thresholds[num(out[a + 1])], used: num(out[a + 2]) });
            }
            alertLists.push(alerts);
          }),
        );
        // Flatten in the operation's order, as the contract asks.
        const offsets: number[] = [];
        let offset = 0;
        for (const item of op.items) {
          offsets.push(offset);
          offset += item.slots.length;
        }
        const alerts = alertLists.flat().map((a) => ({ slot: offsets[a.item] + a.index, threshold: a.threshold, used: a.used }));
        alerts.sort((x, y) => x.slot - y.slot || x.threshold - y.threshold);
        return {
          allowed: true,
          slots: slotResults.flat(),
          records: op.items.map((item) => ({ id: item.event.id, recorded: true })),
          alerts,
          ...(missing.length ? { missing: missing.map(([i, s]) => offsets[i] + s) } : {}),
        };
      }
      case 'release': {
        if (op.slots.length === 0) return { allowed: true, slots: [] };
        const keys = op.slots.map((s) => this.keysOf(s).s);
        await this.run(keys.length, [...keys, 'release', String(op.now), op.holdId]);
        return { allowed: true, slots: [] };
      }
      case 'seed': {
        if (op.seeds.length === 0) return { allowed: true, slots: [] };
        const keys = op.seeds.flatMap((s) => {
          const base = slotBase(this.prefix, s.slot);
          return [`${base}:s`, `${base}:d`, `${base}:e`];
        });
        const seeds = op.seeds.map((s) => ({
          slot: { a: s.slot.aggregation, v: s.slot.limitValue, t: s.slot.thresholds, e: s.slot.windowEnd },
          c: s.state.count,
          s: s.state.sum,
          d: s.state.distinct,
          mn: s.state.min,
          mx: s.state.max,
          l: s.state.latest,
          la: s.state.latestAt,
          values: s.distinctValues ?? [],
          ids: s.recentEventIds,
        }));
        await this.run(keys.length, [...keys, 'seed', String(op.now), JSON.stringify(seeds)]);
        return { allowed: true, slots: [] };
      }
    }
  }

  async close(): Promise<void> {
    if (this.owned && this.client) {
      const client = this.client;
      this.client = null;
      this.connecting = null;
      await client.quit().catch(() => {});
    }
  }
}
