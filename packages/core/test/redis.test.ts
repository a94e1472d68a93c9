import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTollgate, memoryStore, type CounterSlot } from '@tollgate/core';
import { COUNTERS_SCRIPT_SHA, redisCounters } from '@tollgate/core/redis';
import { storeConformance } from '@tollgate/core/testing';

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

async function deleteKeys(prefix: string) {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await admin.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

const meters = [{ id: 'tokens', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' }];
const limits = [{ id: 'daily', name: 'Daily', meterId: 'tokens', limitValue: 100, period: 'day' as const }];

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

  test('runs its script by SHA, and falls back to EVAL when Redis has forgotten it', async () => {
    const { readFileSync } = await import('node:fs');
    expect(await admin.script('LOAD', (await import('@tollgate/core/redis')).COUNTERS_SCRIPT)).toBe(COUNTERS_SCRIPT_SHA);
    await admin.script('FLUSH');
    const tollgate = createTollgate({ counters: redisCounters({ url, prefix: newPrefix() }), meters, limits });
    await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 5 } });
    expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(5);
    expect(await admin.script('EXISTS', COUNTERS_SCRIPT_SHA)).toEqual([1]);
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
