import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTollgate, memoryStore, type CounterSlot } from '@tollgate/core';
import { CHECK_SCRIPT_SHA, COUNTERS_SCRIPT_SHA, redisCounters } from '@tollgate/core/redis';
import { storeConformance } from '@tollgate/core/testing';
import { deleteKeys as deleteKeysUnder } from './fixtures/redis.js';

const url = process.env.TOLLGATE_REDIS_URL;
if (!url && process.env.CI === 'true') throw new Error('CI=true but TOLLGATE_REDIS_URL is not set: the Redis suite must run in CI.');
if (!url) console.warn('Skipping the Redis counters suite: set TOLLGATE_REDIS_URL=redis://127.0.0.1:6379 to run it.');
const suite = url ? describe : describe.skip;

const run = randomUUID().slice(0, 8);
let admin: Redis;
const prefixes: string[] = [];
const newPrefix = () => {
  const p = `tollgate-test:${run}:${prefixes.length}:`;
  prefixes.push(p);
  return p;
};

const deleteKeys = (prefix: string) => deleteKeysUnder(admin, prefix);

const meters = [{ id: 'tokens', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' }];
const limits = [{ id: 'daily', name: 'Daily', meterId: 'tokens', limitValue: 100, period: 'day' as const }];

/** Every aggregation, hard and soft, with thresholds: for comparing decisions with the memory store. */
const mix = [
  { id: 'tok', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' },
  { id: 'req', name: 'Requests', aggregation: 'count' as const, field: '*' },
  { id: 'peak', name: 'Peak', aggregation: 'max' as const, field: 'values.tokens' },
  { id: 'low', name: 'Low', aggregation: 'min' as const, field: 'values.tokens' },
  { id: 'mean', name: 'Mean', aggregation: 'avg' as const, field: 'values.tokens' },
  { id: 'users', name: 'Users', aggregation: 'unique' as const, field: 'dimensions.user' },
  { id: 'last', name: 'Last', aggregation: 'latest' as const, field: 'values.tokens' },
];
const mixLimits = [
  { id: 'tok-day', name: 'tok', meterId: 'tok', limitValue: 400.5, period: 'day' as const, alertThresholds: [25, 50, 100] },
  { id: 'req-min', name: 'req', meterId: 'req', limitValue: 12, period: 'minute' as const },
  { id: 'peak-day', name: 'peak', meterId: 'peak', limitValue: 60, period: 'day' as const },
  { id: 'low-day', name: 'low', meterId: 'low', limitValue: 50, period: 'day' as const, mode: 'soft' as const },
  { id: 'mean-day', name: 'mean', meterId: 'mean', limitValue: 30.25, period: 'day' as const },
  { id: 'users-day', name: 'users', meterId: 'users', limitValue: 4, period: 'day' as const },
  { id: 'last-day', name: 'last', meterId: 'last', limitValue: 19, period: 'day' as const },
];

suite('redis counters', () => {
  beforeAll(() => {
    admin = new Redis(url!);
  });
  afterAll(async () => {
    for (const p of prefixes) await deleteKeys(p);
    await admin?.quit();
  });

  storeConformance({ describe, test, expect, beforeAll, afterAll }, {
    name: 'redis counters beside a memory ledger',
    create: () => {
      const prefix = newPrefix();
      return { store: memoryStore(), counters: redisCounters({ url, prefix }), cleanup: () => deleteKeys(prefix) };
    },
  });

  test('runs its scripts by SHA, and falls back to EVAL when Redis has forgotten them', async () => {
    const { readFileSync } = await import('node:fs');
    const scripts = await import('@tollgate/core/redis');
    expect(await admin.script('LOAD', scripts.COUNTERS_SCRIPT)).toBe(COUNTERS_SCRIPT_SHA);
    expect(await admin.script('LOAD', scripts.CHECK_SCRIPT)).toBe(CHECK_SCRIPT_SHA);
    await admin.script('FLUSH');
    const tollgate = createTollgate({ counters: redisCounters({ url, prefix: newPrefix() }), meters, limits });
    await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 5 } });
    expect(await admin.script('EXISTS', COUNTERS_SCRIPT_SHA, CHECK_SCRIPT_SHA)).toEqual([1, 0]);
    expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(5);
    expect(await admin.script('EXISTS', COUNTERS_SCRIPT_SHA, CHECK_SCRIPT_SHA)).toEqual([1, 1]);
    await admin.script('FLUSH'); // forgotten again: the next check and reservation load them again
    expect((await tollgate.limits.check({ customerId: 'c', estimate: { tokens: 95 } })).allowed).toBe(true);
    expect((await tollgate.limits.check({ customerId: 'c', estimate: { tokens: 96 } })).allowed).toBe(false);
    expect((await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 95 } })).allowed).toBe(true);
    expect(await admin.script('EXISTS', COUNTERS_SCRIPT_SHA, CHECK_SCRIPT_SHA)).toEqual([1, 1]);
    await tollgate.close();
    expect(readFileSync).toBeTypeOf('function');
  });

  test('rebuilds lost counters from the ledger before deciding', async () => {
    const prefix = newPrefix();
    const store = memoryStore();
    const tollgate = createTollgate({ store, counters: redisCounters({ url, prefix }), meters, limits });
    for (const tokens of [10, 20, 30]) await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens } });
    const before = (await tollgate.limits.check({ customerId: 'c' })).limits[0].used;
    expect(before).toBe(60);
    await deleteKeys(prefix); // Redis lost everything of ours, as after FLUSHALL or a restart.
    expect(await admin.keys(`${prefix}*`)).toEqual([]);
    expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(60);
    const r = await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 41 } });
    expect(r.allowed).toBe(false);
    await tollgate.close();
  });

  test('applies a retried counter update once (the update carries the event id)', async () => {
    const prefix = newPrefix();
    const counters = redisCounters({ url, prefix });
    const tollgate = createTollgate({ counters, meters, limits });
    await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 1 } }); // seeds the slot
    const decision = await tollgate.limits.check({ customerId: 'c' });
    const windowStart = Date.parse(decision.limits[0].windowStart);
    const slotKey = (await admin.keys(`${prefix}*:s`))[0];
    const limitKey = slotKey.split(':').slice(-3, -2)[0];
    const slot: CounterSlot = {
      key: 'k', limitKey, limitId: 'daily', customerId: 'c', windowStart, windowEnd: windowStart + 86_400_000,
      aggregation: 'sum', limitValue: 100, mode: 'hard', contribution: 7, thresholds: [100],
      source: { aggregation: 'sum', field: 'values.tokens', customerId: 'c' },
    };
    const event = { id: 'evt_retry', customerId: 'c', eventType: 'x', values: { tokens: 7 }, dimensions: {}, timestamp: Date.now() };
    const op = { type: 'record' as const, now: Date.now(), persist: false, items: [{ event, slots: [slot] }] };
    await counters.apply(op);
    await counters.apply(op);
    expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(8);
    await tollgate.close();
  });

  test("keeps one customer's keys under one {customerId} hash tag, escaping braces", async () => {
    const prefix = newPrefix();
    const tollgate = createTollgate({ counters: redisCounters({ url, prefix }), meters, limits: [...limits, { id: 'm', name: 'm', meterId: 'tokens', limitValue: 5, period: 'minute' }] });
    const r = await tollgate.reserve({ customerId: 'we{ird}', eventType: 'x', estimate: { tokens: 1 } });
    await r.commit();
    const keys = await admin.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThanOrEqual(4);
    for (const k of keys) expect(k.startsWith(`${prefix}{we%7Bird%7D}:`)).toBe(true);
    const ttl = await admin.pttl(keys.find((k) => k.endsWith(':s'))!);
    expect(ttl).toBeGreaterThan(0);
    await tollgate.close();
  });

  test('with Redis unreachable, answers within the timeout by policy and still records to the ledger', async () => {
    for (const policy of ['open', 'closed'] as const) {
      const store = memoryStore();
      const tollgate = createTollgate({
        store,
        counters: redisCounters({ url: 'redis://127.0.0.1:1', redisOptions: { maxRetriesPerRequest: 1, retryStrategy: () => 50 } }),
        meters,
        limits,
        onStoreError: policy,
        storeTimeoutMs: 200,
      });
      const started = Date.now();
      const d = await tollgate.limits.check({ customerId: 'c' });
      expect(Date.now() - started).toBeLessThan(1500);
      expect(d.allowed).toBe(policy === 'open');
      expect(d.reason).toBe(policy === 'open' ? 'store_error_open' : 'store_error_closed');
      const r = await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 1 } });
      expect(r.allowed).toBe(policy === 'open');
      const rec = await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 3 } });
      expect(rec.recorded).toBe(true);
      expect((await tollgate.events.getSummary({ customerId: 'c' })).values.tokens).toBe(3);
      await tollgate.close();
    }
  });

  test('with Redis stalled by CLIENT PAUSE, a check answers within the timeout', async () => {
    const prefix = newPrefix();
    const tollgate = createTollgate({ counters: redisCounters({ url, prefix }), meters, limits, onStoreError: 'closed', storeTimeoutMs: 250 });
    await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 1 } });
    expect((await tollgate.limits.check({ customerId: 'c' })).reason).toBe('limits');
    await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
    const started = Date.now();
    const d = await tollgate.limits.check({ customerId: 'c' });
    const took = Date.now() - started;
    expect(d).toMatchObject({ allowed: false, reason: 'store_error_closed' });
    expect(took).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 1600));
    expect((await tollgate.limits.check({ customerId: 'c' })).reason).toBe('limits');
    await tollgate.close();
  });

  test('decides as the memory store does over a random mix of checks, holds, commits, releases and retries', async () => {
    const prefix = newPrefix();
    // One clock for both: on the real clock a minute could end between the two engines' turns.
    const at = Date.now();
    const reference = createTollgate({ store: memoryStore(), meters: mix, limits: mixLimits, now: () => at });
    const redis = createTollgate({ store: memoryStore(), counters: redisCounters({ url, prefix }), meters: mix, limits: mixLimits, now: () => at });
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const view = (d: { allowed: boolean; limits: Array<{ limitId: string; used: number; allowed: boolean }> }) =>
      [d.allowed, d.limits.map((l) => [l.limitId, l.used, l.allowed]).sort()];
    const open: Array<[Awaited<ReturnType<typeof reference.reserve>>, Awaited<ReturnType<typeof redis.reserve>>]> = [];
    for (let step = 0; step < 150; step++) {
      const customerId = `c${rand(2)}`;
      const tokens = [0.1, 0.2, 1, 7.5, 20, 2 ** 53 + 2][rand(6)];
      const user = `u${rand(6)}`;
      const input = { customerId, eventType: 'x', estimate: { tokens }, dimensions: { user } };
      const kind = rand(5);
      if (kind === 0) {
        expect(view(await redis.limits.check(input))).toEqual(view(await reference.limits.check(input)));
      } else if (kind === 1 && open.length < 6) {
        const pair = [await reference.reserve(input), await redis.reserve(input)] as const;
        expect(view(pair[1])).toEqual(view(pair[0]));
        if (pair[0].allowed) open.push([pair[0], pair[1]]);
      } else if (kind === 2 && open.length > 0) {
        const [a, b] = open.splice(rand(open.length), 1)[0];
        if (rand(2) === 0) {
          const values = { tokens: tokens / 2 };
          await a.commit({ values });
          await b.commit({ values });
        } else {
          await a.release();
          await b.release();
        }
      } else {
        const event = { customerId, eventType: 'x', values: { tokens }, dimensions: { user }, idempotencyKey: `k${step}` };
        await reference.events.record(event);
        await redis.events.record(event);
        if (rand(3) === 0) await redis.events.record(event); // a retry changes nothing
      }
      const probe = { customerId, dimensions: { user: 'u0' } };
      expect(view(await redis.limits.check(probe))).toEqual(view(await reference.limits.check(probe)));
    }
    await reference.close();
    await redis.close();
  });

  test('concurrent checks share script runs, and each gets the answer the memory store gives', async () => {
    const prefix = newPrefix();
    const client = new Redis(url!);
    let checkRuns = 0;
    const evalsha = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>;
    client.evalsha = ((...args: unknown[]) => {
      if (args[0] === CHECK_SCRIPT_SHA) checkRuns++;
      return evalsha(...args);
    }) as typeof client.evalsha;
    const at = Date.now(); // one clock for both engines, as above
    const reference = createTollgate({ store: memoryStore(), meters: mix, limits: mixLimits, now: () => at });
    const redis = createTollgate({ store: memoryStore(), counters: redisCounters({ client, prefix }), meters: mix, limits: mixLimits, now: () => at });
    // c0 and c1 have usage; c1 also an open hold (its slots are read whole); c2 and c3 are new (their slots are seeded first).
    for (const [customerId, tokens, user] of [['c0', 7.5, 'u1'], ['c0', 1, 'u2'], ['c1', 20, 'u1'], ['c1', 0.2, 'u3']] as const) {
      const event = { customerId, eventType: 'x', values: { tokens }, dimensions: { user } };
      await reference.events.record(event);
      await redis.events.record(event);
    }
    const hold = { customerId: 'c1', eventType: 'x', estimate: { tokens: 5 }, dimensions: { user: 'u4' } };
    expect((await reference.reserve(hold)).allowed).toBe(true);
    expect((await redis.reserve(hold)).allowed).toBe(true);
    const view = (d: { allowed: boolean; limits: Array<{ limitId: string; used: number; allowed: boolean }> }) =>
      [d.allowed, d.limits.map((l) => [l.limitId, l.used, l.allowed]).sort()];
    const inputs = Array.from({ length: 40 }, (_, i) => ({
      customerId: `c${i % 4}`,
      // With and without an estimate, and distinct values old and new: replies of different lengths side by side.
      ...(i % 5 === 0 ? {} : { estimate: { tokens: [0.1, 19, 30, 400][i % 4] } }),
      dimensions: { user: `u${i % 6}` },
    }));
    const expected = await Promise.all(inputs.map((input) => reference.limits.check(input)));
    checkRuns = 0;
    const actual = await Promise.all(inputs.map((input) => redis.limits.check(input)));
    expect(actual.map(view)).toEqual(expected.map(view));
    // 40 checks, plus the re-checks of the two new customers after seeding, in far fewer runs.
    expect(checkRuns).toBeGreaterThan(0);
    expect(checkRuns).toBeLessThanOrEqual(20);
    await reference.close();
    await redis.close();
    await client.quit();
  });

  test('reads a slot whole whenever it may hold a hold, including holds placed by the previous script', async () => {
    const prefix = newPrefix();
    const tollgate = createTollgate({ counters: redisCounters({ url, prefix }), meters, limits });
    await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 10 } });
    const slotKey = (await admin.keys(`${prefix}*:s`))[0];
    const used = async () => (await tollgate.limits.check({ customerId: 'c' })).limits[0].used;
    expect(await used()).toBe(10);
    const hold = await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 5 } });
    expect(await admin.hget(slotKey, 'hn')).toBe('1');
    expect(await used()).toBe(15);
    await hold.commit({ values: { tokens: 3 } });
    expect(await used()).toBe(13);
    expect(await admin.hmget(slotKey, 'hn', 'h:~')).toEqual(['0', '0|0']);
    // The previous script deletes lapsed holds (the marker looks like one) whenever it touches a
    // slot, before it places a hold of its own, which it does not count in hn.
    await admin.hdel(slotKey, 'h:~');
    await admin.hset(slotKey, 'h:old-live', `20|${Date.now() + 60_000}`, 'h:old-lapsed', `40|${Date.now() - 1}`);
    expect(await used()).toBe(33);
    expect(await admin.hexists(slotKey, 'h:old-lapsed')).toBe(1); // a check changes nothing
    expect((await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 67 } })).allowed).toBe(true);
    expect(await admin.hexists(slotKey, 'h:old-lapsed')).toBe(0); // a reservation tidies lapsed holds
    expect(await admin.hmget(slotKey, 'hn', 'h:~')).toEqual(['2', '0|0']);
    expect((await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 1 } })).allowed).toBe(false);
    // The previous script's release drops its hold without counting: hn is then too high, never too low.
    await admin.hdel(slotKey, 'h:old-live');
    expect(await used()).toBe(80);
    await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 1 } });
    expect(await used()).toBe(81);
    expect(await admin.hget(slotKey, 'hn')).toBe('1'); // the open 67-token hold
    await tollgate.close();
  });

  test('every key a record writes expires an hour after its window, also a key Redis lost in between', async () => {
    const prefix = newPrefix();
    const tollgate = createTollgate({
      counters: redisCounters({ url, prefix }),
      meters: [...meters, { id: 'users', name: 'Users', aggregation: 'unique', field: 'dimensions.user' }],
      limits: [
        ...limits,
        { id: 'users-day', name: 'Users', meterId: 'users', limitValue: 100, period: 'day' },
        { id: 'ever', name: 'Ever', meterId: 'tokens', limitValue: 1e9, period: 'all_time' },
      ],
    });
    const record = (user: string) => tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 1 }, dimensions: { user } });
    // When each key expires (ms since the epoch; -1 for none), by its limit and kind.
    const expiries = async () => {
      const out: Record<string, number> = {};
      for (const k of await admin.keys(`${prefix}*`)) {
        const ttl = await admin.pttl(k);
        out[`${k.split(':').at(-3)!.split('@')[0]}:${k.split(':').at(-1)}`] = ttl < 0 ? ttl : Date.now() + ttl;
      }
      return out;
    };
    const dayEnd = Date.parse((await tollgate.limits.check({ customerId: 'c' })).limits.find((l) => l.limitId === 'daily')!.windowEnd!);
    await record('u1'); // seeds the slots, then counts
    const first = await expiries();
    expect(Object.keys(first).sort()).toEqual(['daily:e', 'daily:s', 'ever:e', 'ever:s', 'users-day:d', 'users-day:e', 'users-day:s']);
    for (const k of ['daily:e', 'daily:s', 'users-day:d', 'users-day:e', 'users-day:s']) expect(Math.abs(first[k] - (dayEnd + 3_600_000))).toBeLessThan(5_000);
    expect([first['ever:s'], first['ever:e']]).toEqual([-1, -1]);
    // Redis loses the recent ids of one slot and the distinct values of another (as eviction may);
    // the next record, within the minute, makes them again: with the same expiry.
    const keys = await admin.keys(`${prefix}*`);
    await admin.del(keys.find((k) => k.includes(':daily@') && k.endsWith(':e'))!, keys.find((k) => k.endsWith(':d'))!);
    await record('u2');
    const second = await expiries();
    expect(Object.keys(second).sort()).toEqual(Object.keys(first).sort());
    for (const k of Object.keys(first)) {
      if (first[k] < 0) expect(second[k]).toBe(first[k]);
      else expect(Math.abs(second[k] - first[k])).toBeLessThan(5_000);
    }
    expect((await tollgate.limits.check({ customerId: 'c', dimensions: { user: 'u3' } })).limits.map((l) => l.used).sort()).toEqual([2, 2, 2]);
    await tollgate.close();
  });

  test('4 processes × 50 concurrent reservations against a limit of 100 → exactly 100', async () => {
    const prefix = newPrefix();
    const fixture = fileURLToPath(new URL('./fixtures/redis-reserve.mjs', import.meta.url));
    const exec = promisify(execFile);
    const outputs = await Promise.all(Array.from({ length: 4 }, () => exec(process.execPath, [fixture, url!, prefix, '50'])));
    const results = outputs.map((o) => JSON.parse(o.stdout) as { allowed: number; recorded: number });
    expect(results.reduce((a, r) => a + r.allowed, 0)).toBe(100);
    expect(results.reduce((a, r) => a + r.recorded, 0)).toBe(100);
    const observer = createTollgate({ counters: redisCounters({ url, prefix }), meters: [{ id: 'units', name: 'Units', aggregation: 'sum', field: 'values.units' }], limits: [{ id: 'cap', name: 'Cap', meterId: 'units', limitValue: 100, period: 'day' }] });
    const d = await observer.limits.check({ customerId: 'shared-customer' });
    expect(d.limits[0]).toMatchObject({ used: 100, exceeded: true });
    await observer.close();
  }, 60_000);
});
