import { TollgateError } from '../errors.js';
import {
  STORE_CONTRACT_VERSION,
  type CounterOperation,
  type CounterResult,
  type CounterSlot,
  type CounterStore,
  type StoreCapabilities,
} from '../store.js';
import { COUNTERS_SCRIPT, COUNTERS_SCRIPT_SHA } from './script.js';

export { COUNTERS_SCRIPT, COUNTERS_SCRIPT_SHA };

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

interface ScriptSlot {
  a: string;
  v: number;
  m: string;
  c: number | string | null;
  t: number[];
  e: number | null;
}

/** Events counted this recently are remembered by id, so a retried update is applied once. */
const RECENT_MS = 15 * 60_000;

function tag(customerId: string): string {
  // A hash tag ends at the first '}', so braces inside an id are escaped.
  return customerId.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function slotKeys(prefix: string, slot: CounterSlot): string[] {
  const base = `${prefix}{${tag(slot.customerId)}}:${slot.limitKey}:${slot.windowStart}`;
  return [`${base}:s`, `${base}:d`, `${base}:e`];
}

function scriptSlot(slot: CounterSlot): ScriptSlot {
  return { a: slot.aggregation, v: slot.limitValue, m: slot.mode, c: slot.contribution, t: slot.thresholds, e: slot.windowEnd };
}

const list = <T>(x: unknown): T[] => (Array.isArray(x) ? (x as T[]) : []);

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

  private async run(keys: string[], payload: unknown): Promise<Record<string, unknown>> {
    const client = this.client ?? (await this.connect());
    const json = JSON.stringify(payload);
    let raw: unknown;
    try {
      raw = await client.evalsha(COUNTERS_SCRIPT_SHA, keys.length, ...keys, json);
    } catch (error) {
      if (!String((error as Error)?.message).includes('NOSCRIPT')) throw error;
      raw = await client.eval(COUNTERS_SCRIPT, keys.length, ...keys, json);
    }
    return JSON.parse(String(raw));
  }

  async apply(op: CounterOperation): Promise<CounterResult> {
    switch (op.type) {
      case 'check':
      case 'reserve': {
        const keys = op.slots.flatMap((s) => slotKeys(this.prefix, s));
        const payload = op.type === 'check'
          ? { type: 'check', now: op.now, recentMs: RECENT_MS, slots: op.slots.map(scriptSlot) }
          : { type: 'reserve', now: op.now, recentMs: RECENT_MS, holdId: op.holdId, expiresAt: op.expiresAt, slots: op.slots.map(scriptSlot) };
        const out = await this.run(keys, payload);
        if (out.missing) return { allowed: false, slots: [], missing: list<number>(out.missing) };
        const used = list<string>(out.used);
        const ok = list<boolean>(out.ok);
        return { allowed: out.allowed === true, slots: used.map((u, i) => ({ used: Number(u), allowed: ok[i] })) };
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
        await Promise.all(
          [...groups.values()].map(async (indexes) => {
            const keys: string[] = [];
            const items = indexes.map((i) => {
              const item = op.items[i];
              for (const s of item.slots) keys.push(...slotKeys(this.prefix, s));
              return item;
            });
            const holdKeyIndexes = items.map((item) => (item.holdSlots ?? []).map((s) => keys.push(slotKeys(this.prefix, s)[0])));
            const payload = {
              type: 'record',
              slotCount: items.reduce((n, item) => n + item.slots.length, 0),
              now: op.now,
              recentMs: RECENT_MS,
              items: items.map((item, j) => ({
                id: item.event.id,
                at: item.event.timestamp,
                holdId: item.holdId,
                holdKeys: holdKeyIndexes[j],
                slots: item.slots.map(scriptSlot),
              })),
            };
            const out = await this.run(keys, payload);
            // Map the group's flat slot positions back to (item, slot).
            const positions: Array<[number, number]> = [];
            indexes.forEach((i) => op.items[i].slots.forEach((_, s) => positions.push([i, s])));
            if (out.missing) {
              for (const k of list<number>(out.missing)) missing.push(positions[k]);
              for (const i of indexes) slotResults[i] = op.items[i].slots.map(() => ({ used: Number.NaN, allowed: true }));
              return;
            }
            list<string>(out.used).forEach((u, k) => slotResults[positions[k][0]].push({ used: Number(u), allowed: true }));
            alertLists.push(list<[number, number, string]>(out.alerts).map(([k, threshold, u]) => ({ item: positions[k][0], index: positions[k][1], threshold, used: Number(u) })));
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
        const keys = op.slots.flatMap((s) => slotKeys(this.prefix, s));
        await this.run(keys, { type: 'release', now: op.now, recentMs: RECENT_MS, holdId: op.holdId, slots: op.slots.map(scriptSlot) });
        return { allowed: true, slots: [] };
      }
      case 'seed': {
        if (op.seeds.length === 0) return { allowed: true, slots: [] };
        const keys = op.seeds.flatMap((s) => slotKeys(this.prefix, s.slot));
        await this.run(keys, {
          type: 'seed',
          now: op.now,
          recentMs: RECENT_MS,
          seeds: op.seeds.map((s) => ({
            slot: scriptSlot(s.slot),
            c: s.state.count,
            s: s.state.sum,
            d: s.state.distinct,
            mn: s.state.min,
            mx: s.state.max,
            l: s.state.latest,
            la: s.state.latestAt,
            values: s.distinctValues ?? [],
            ids: s.recentEventIds,
          })),
        });
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
