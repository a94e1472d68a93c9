/**
 * The store conformance suite. Any store — ours or a third party's — proves it keeps the
 * contract of `@tollgate/core` by running this suite with its own test runner:
 *
 * ```ts
 * import { afterAll, beforeAll, describe, expect, test } from 'vitest';
 * import { storeConformance } from '@tollgate/core/testing';
 * storeConformance({ describe, test, expect, beforeAll, afterAll }, {
 *   name: 'my-store',
 *   create: async () => ({ store: myStore() }),
 * });
 * ```
 *
 * Groups a store cannot support are switched off explicitly through `groups`, and the suite
 * registers a visibly skipped test naming each group it leaves out: nothing is skipped silently.
 */
import { createTollgate, type Tollgate, type TollgateOptions } from '../tollgate.js';
import { TollgateError } from '../errors.js';
import type { AlertEvent, CheckResult, CreateLimitInput, CreateMeterInput } from '../index.js';

type Fn = () => unknown | Promise<unknown>;

/** The test functions of your runner (vitest, jest, node:test adapters all fit). */
export interface TestApi {
  describe: (name: string, fn: () => void) => void;
  test: ((name: string, fn: Fn, timeout?: number) => void) & { skip: (name: string, fn: Fn) => void };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  expect: (actual: unknown) => any;
  beforeAll?: (fn: Fn, timeout?: number) => void;
  afterAll?: (fn: Fn, timeout?: number) => void;
}

/** What `create` returns: the store options for `createTollgate`, and how to clean up after. */
export interface StoreSetup {
  store?: TollgateOptions['store'];
  counters?: TollgateOptions['counters'];
  cleanup?: () => Promise<void> | void;
}

export type ConformanceGroup = 'definitions' | 'events' | 'limits' | 'reservations' | 'alerts' | 'shared';

export interface ConformanceOptions {
  /** Shown in test names. */
  name: string;
  /** A fresh, empty store for one test. Called once per test. */
  create: () => Promise<StoreSetup> | StoreSetup;
  /**
   * Groups to run; every group runs unless switched off here. `shared` (two engines on one
   * store see each other's definitions and counters) needs the store to declare
   * `capabilities.shared`; switch it off for a store that does not.
   */
  groups?: Partial<Record<ConformanceGroup, boolean>>;
  /** Per-test timeout in ms. Default 30 000. */
  timeout?: number;
}

const T0 = Date.parse('2026-03-10T12:00:30.000Z');
const MINUTE = 60_000;
const DAY = 86_400_000;

const meters: CreateMeterInput[] = [
  { id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' },
  { id: 'requests', name: 'Requests', aggregation: 'count', field: '*' },
  { id: 'completions', name: 'Completions', aggregation: 'count', field: '*', eventFilter: { eventType: 'llm.completion' } },
  { id: 'peak', name: 'Peak concurrency', aggregation: 'max', field: 'values.concurrency' },
  { id: 'users', name: 'Active users', aggregation: 'unique', field: 'dimensions.user_id' },
];

interface Harness {
  tollgate: Tollgate;
  /** Moves the injected clock. */
  advance(ms: number): void;
  now(): number;
  alerts: AlertEvent[];
  /** A second engine on the same store(s), for the shared group. */
  second(): Tollgate;
  /** Whether the counters store declares `capabilities.shared`. */
  shared: boolean;
}

/** Registers the conformance tests for one store. */
export function storeConformance(t: TestApi, options: ConformanceOptions): void {
  const { describe, test, expect } = t;
  const timeout = options.timeout ?? 30_000;
  const enabled = (g: ConformanceGroup) => options.groups?.[g] !== false;
  const cleanups: Array<() => Promise<void> | void> = [];

  async function harness(limits: CreateLimitInput[] = [], extra: Partial<TollgateOptions> = {}): Promise<Harness> {
    const setup = await options.create();
    let clock = T0;
    const alerts: AlertEvent[] = [];
    const make = () =>
      createTollgate({
        store: setup.store,
        counters: setup.counters,
        meters,
        limits,
        now: () => clock,
        onAlert: (a) => { alerts.push(a); },
        ...extra,
      });
    const tollgate = make();
    const engines = [tollgate];
    cleanups.push(async () => {
      for (const e of engines) await e.close().catch(() => {});
      await setup.cleanup?.();
    });
    await tollgate.ready();
    return {
      tollgate,
      advance: (ms) => { clock += ms; },
      now: () => clock,
      alerts,
      shared: Boolean((setup.counters ?? setup.store)?.capabilities.shared),
      second: () => {
        const e = createTollgate({ store: setup.store, counters: setup.counters, now: () => clock, cacheTtlMs: 0 });
        return e;
      },
    };
  }

  const it = (name: string, fn: Fn) =>
    test(name, async () => {
      try {
        await fn();
      } finally {
        while (cleanups.length) await cleanups.pop()!();
      }
    }, timeout);

  const group = (g: ConformanceGroup, title: string, body: () => void) => {
    if (enabled(g)) describe(title, body);
    else describe(title, () => test.skip(`${options.name}: group "${g}" switched off by the store's conformance options`, () => {}));
  };

  const record = (tg: Tollgate, customerId: string, values: Record<string, number> = {}, extra: Record<string, unknown> = {}) =>
    tg.events.record({ customerId, eventType: 'llm.completion', values, ...extra });

  describe(`store conformance: ${options.name}`, () => {
    // ── definitions ──────────────────────────────────────────────────────────
    group('definitions', 'customers, meters and limits', () => {
      it('creates, retrieves, updates, lists and deletes customers', async () => {
        const { tollgate } = await harness();
        const c = await tollgate.customers.create({ id: 'cus_1', name: 'Acme', email: 'ops@acme.test', timezone: 'Europe/Berlin', metadata: { plan: 'pro' } });
        expect(c).toMatchObject({ id: 'cus_1', name: 'Acme', timezone: 'Europe/Berlin', metadata: { plan: 'pro' } });
        expect(await tollgate.customers.retrieve('cus_1')).toEqual(c);
        await expect(tollgate.customers.create({ id: 'cus_1' })).rejects.toMatchObject({ code: 'already_exists' });
        const updated = await tollgate.customers.update('cus_1', { name: 'Acme Inc', timezone: null });
        expect(updated.name).toBe('Acme Inc');
        expect(updated.timezone).toBeUndefined();
        expect((await tollgate.customers.retrieve('cus_1')).name).toBe('Acme Inc');
        for (let i = 2; i <= 5; i++) await tollgate.customers.create({ id: `cus_${i}` });
        const first = await tollgate.customers.list({ limit: 3 });
        expect(first.data.map((x) => x.id)).toEqual(['cus_1', 'cus_2', 'cus_3']);
        expect(first.hasMore).toBe(true);
        const rest = await tollgate.customers.list({ limit: 3, cursor: first.nextCursor! });
        expect(rest.data.map((x) => x.id)).toEqual(['cus_4', 'cus_5']);
        expect(rest.hasMore).toBe(false);
        expect(await tollgate.customers.delete('cus_1')).toEqual({ id: 'cus_1', deleted: true });
        await expect(tollgate.customers.retrieve('cus_1')).rejects.toMatchObject({ code: 'customer_not_found' });
        await expect(tollgate.customers.delete('cus_1')).rejects.toMatchObject({ code: 'customer_not_found' });
      });

      it('creates a customer on first record, with its billing cycle starting then', async () => {
        const { tollgate, now } = await harness();
        await record(tollgate, 'auto_1', { tokens: 1 });
        const c = await tollgate.customers.retrieve('auto_1');
        expect(Date.parse(c.billingCycleStart)).toBe(now());
      });

      it('keeps meters and limits with CRUD and rejects dangling references', async () => {
        const { tollgate } = await harness();
        expect((await tollgate.meters.list()).data.map((m) => m.id).sort()).toEqual(meters.map((m) => m.id).sort());
        const m = await tollgate.meters.create({ id: 'images', name: 'Images', aggregation: 'count', field: '*', eventFilter: { eventType: 'image.generate' } });
        expect(await tollgate.meters.retrieve('images')).toEqual(m);
        await expect(tollgate.meters.create({ id: 'images', name: 'x', aggregation: 'count', field: '*' })).rejects.toMatchObject({ code: 'already_exists' });
        await expect(tollgate.limits.create({ id: 'l', name: 'L', meterId: 'nope', limitValue: 1, period: 'day' })).rejects.toMatchObject({ code: 'meter_not_found' });
        const l = await tollgate.limits.create({ id: 'img-day', name: 'Images per day', meterId: 'images', limitValue: 10, period: 'day', alertThresholds: [80, 50] });
        expect(l).toMatchObject({ mode: 'hard', alertThresholds: [50, 80] });
        expect((await tollgate.limits.update('img-day', { limitValue: 20, mode: 'soft' })).limitValue).toBe(20);
        expect(await tollgate.limits.retrieve('img-day')).toMatchObject({ limitValue: 20, mode: 'soft' });
        await expect(tollgate.meters.delete('images')).rejects.toMatchObject({ code: 'invalid_request' });
        await tollgate.limits.delete('img-day');
        await expect(tollgate.limits.retrieve('img-day')).rejects.toMatchObject({ code: 'limit_not_found' });
        await tollgate.meters.delete('images');
        await expect(tollgate.meters.retrieve('images')).rejects.toMatchObject({ code: 'meter_not_found' });
      });
    });

    // ── events ───────────────────────────────────────────────────────────────
    group('events', 'events and usage queries', () => {
      it('records an event and lists it back with every field', async () => {
        const { tollgate, now } = await harness();
        const r = await tollgate.events.record({
          customerId: 'c1',
          eventType: 'llm.completion',
          values: { tokens: 120, cost: 0.25 },
          dimensions: { model: 'gpt-x', region: 'eu' },
          properties: { prompt: 'hi', nested: { a: [1, 2] } },
        });
        expect(r.recorded).toBe(true);
        const page = await tollgate.events.list({ customerId: 'c1' });
        expect(page.data).toEqual([
          {
            id: r.id,
            customerId: 'c1',
            eventType: 'llm.completion',
            values: { tokens: 120, cost: 0.25 },
            dimensions: { model: 'gpt-x', region: 'eu' },
            properties: { prompt: 'hi', nested: { a: [1, 2] } },
            timestamp: new Date(now()).toISOString(),
          },
        ]);
      });

      it('stores and counts an idempotency key once, also when sent concurrently', async () => {
        const { tollgate } = await harness([{ id: 'req', name: 'Requests', meterId: 'requests', limitValue: 100, period: 'day' }]);
        const first = await record(tollgate, 'c1', { tokens: 5 }, { idempotencyKey: 'k-1' });
        const again = await record(tollgate, 'c1', { tokens: 5 }, { idempotencyKey: 'k-1' });
        expect(again).toEqual({ id: first.id, recorded: false });
        const racing = await Promise.all(Array.from({ length: 20 }, () => record(tollgate, 'c1', { tokens: 1 }, { idempotencyKey: 'k-2' })));
        expect(racing.filter((x) => x.recorded)).toHaveLength(1);
        expect(new Set(racing.map((x) => x.id)).size).toBe(1);
        expect((await tollgate.events.getSummary({ customerId: 'c1' })).totalEvents).toBe(2);
        expect((await tollgate.limits.check({ customerId: 'c1' })).limits[0].used).toBe(2);
        // Keys are per customer.
        expect((await record(tollgate, 'c2', {}, { idempotencyKey: 'k-1' })).recorded).toBe(true);
      });

      it('ingests a batch whole, or nothing when one event is invalid', async () => {
        const { tollgate } = await harness();
        const events = Array.from({ length: 50 }, (_, i) => ({ customerId: `c${i % 3}`, eventType: 'llm.completion', values: { tokens: i } }));
        expect(await tollgate.events.batchIngest({ events })).toEqual({ count: 50 });
        const bad = [...events, { customerId: 'c1', eventType: 'llm.completion', values: { tokens: Number.NaN } }];
        await expect(tollgate.events.batchIngest({ events: bad })).rejects.toMatchObject({ code: 'invalid_request' });
        expect((await tollgate.events.getSummary()).totalEvents).toBe(50);
      });

      it('pages events newest first by cursor without gaps or repeats, with filters', async () => {
        const { tollgate, advance, now } = await harness();
        const written: Array<{ id: string; at: number }> = [];
        for (let i = 0; i < 25; i++) {
          const { id } = await record(tollgate, i % 5 === 0 ? 'other' : 'c1', { tokens: i }, { dimensions: { model: i % 2 ? 'a' : 'b' } });
          if (i % 5 !== 0) written.push({ id, at: now() });
          if (i % 3 === 0) advance(1000); // several events share a timestamp
        }
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const page = await tollgate.events.list({ customerId: 'c1', limit: 7, cursor });
          seen.push(...page.data.map((e) => e.id));
          for (const e of page.data) expect(e.customerId).toBe('c1');
          if (!page.hasMore) break;
          cursor = page.nextCursor!;
        }
        const expected = written.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1)).map((w) => w.id);
        expect(seen).toEqual(expected);
        const models = await tollgate.events.list({ dimensions: { model: 'a' }, limit: 100 });
        expect(models.data).toHaveLength(12);
      });

      it('summarises, breaks down and buckets usage within date ranges', async () => {
        const { tollgate } = await harness();
        const base = Date.parse('2026-03-01T00:00:00.000Z');
        const events = [
          { customerId: 'a', model: 'x', tokens: 10, cost: 1, at: base + 1 * 3_600_000 },
          { customerId: 'a', model: 'y', tokens: 20, cost: 2, at: base + 2 * 3_600_000 },
          { customerId: 'b', model: 'x', tokens: 30, cost: 3, at: base + 2 * 3_600_000 + 5 },
          { customerId: 'b', model: 'x', tokens: 40, cost: 4, at: base + 26 * 3_600_000 },
        ].map((e) => ({ customerId: e.customerId, eventType: 'llm.completion', values: { tokens: e.tokens, cost: e.cost }, dimensions: { model: e.model }, timestamp: new Date(e.at) }));
        await tollgate.events.batchIngest({ events });
        await tollgate.events.record({ customerId: 'a', eventType: 'api.call', timestamp: new Date(base + 3_600_000) });
        expect(await tollgate.events.getSummary({ eventType: 'llm.completion' })).toEqual({ totalEvents: 4, values: { tokens: 100, cost: 10 } });
        expect(await tollgate.events.getSummary({ customerId: 'a', startDate: new Date(base + 2 * 3_600_000).toISOString() })).toEqual({ totalEvents: 1, values: { tokens: 20, cost: 2 } });
        expect(await tollgate.events.getSummary({ dimensions: { model: 'x' }, endDate: new Date(base + DAY) })).toEqual({ totalEvents: 2, values: { tokens: 40, cost: 4 } });
        const byModel = await tollgate.events.getBreakdown({ groupBy: 'model', eventType: 'llm.completion' });
        expect(byModel.data).toEqual([
          { dimension: 'x', totalEvents: 3, values: { tokens: 80, cost: 8 } },
          { dimension: 'y', totalEvents: 1, values: { tokens: 20, cost: 2 } },
        ]);
        const byCustomer = await tollgate.events.getBreakdown({ groupBy: 'customerId' });
        expect(byCustomer.data.map((r) => [r.dimension, r.totalEvents])).toEqual([['a', 3], ['b', 2]]);
        const byType = await tollgate.events.getBreakdown({ groupBy: 'eventType' });
        expect(byType.data.map((r) => [r.dimension, r.totalEvents])).toEqual([['llm.completion', 4], ['api.call', 1]]);
        const daily = await tollgate.events.getTimeseries({ interval: 'day', startDate: new Date(base), endDate: new Date(base + 3 * DAY), eventType: 'llm.completion' });
        expect(daily.data.map((p) => [p.start, p.totalEvents, p.values.tokens ?? 0])).toEqual([
          ['2026-03-01T00:00:00.000Z', 3, 60],
          ['2026-03-02T00:00:00.000Z', 1, 40],
          ['2026-03-03T00:00:00.000Z', 0, 0],
        ]);
        const tokyo = await tollgate.events.getTimeseries({ interval: 'day', startDate: new Date(base), endDate: new Date(base + DAY), timezone: 'Asia/Tokyo', eventType: 'llm.completion' });
        expect(tokyo.data[0].start).toBe('2026-02-28T15:00:00.000Z');
      });

      it('answers meter queries for every aggregation', async () => {
        const { tollgate } = await harness();
        await tollgate.meters.create({ id: 'min-latency', name: 'Min latency', aggregation: 'min', field: 'values.latency' });
        await tollgate.meters.create({ id: 'last-latency', name: 'Latest latency', aggregation: 'latest', field: 'values.latency' });
        await tollgate.meters.create({ id: 'avg-latency', name: 'Average latency', aggregation: 'avg', field: 'values.latency' });
        const base = Date.parse('2026-03-01T00:00:00.000Z');
        const rows = [
          { latency: 30, tokens: 5, concurrency: 2, user: 'u1', at: base + 3000 },
          { latency: 10, tokens: 7, concurrency: 9, user: 'u2', at: base + 1000 },
          { latency: 50, tokens: 1, concurrency: 4, user: 'u1', at: base + 2000 },
        ];
        for (const r of rows) {
          await tollgate.events.record({ customerId: 'q', eventType: 'llm.completion', values: { latency: r.latency, tokens: r.tokens, concurrency: r.concurrency }, dimensions: { user_id: r.user }, timestamp: new Date(r.at) });
        }
        await tollgate.events.record({ customerId: 'other', eventType: 'llm.completion', values: { tokens: 1000 } });
        const value = async (id: string, q = {}) => (await tollgate.meters.query(id, { customerId: 'q', ...q })).value;
        expect(await value('tokens')).toBe(13);
        expect(await value('requests')).toBe(3);
        expect(await value('peak')).toBe(9);
        expect(await value('min-latency')).toBe(10);
        expect(await value('last-latency')).toBe(30);
        expect(await value('avg-latency')).toBe(30);
        expect(await value('users')).toBe(2);
        expect(await value('tokens', { startDate: new Date(base + 1500) })).toBe(6);
        expect(await value('tokens', { dimensions: { user_id: 'u1' } })).toBe(6);
        expect((await tollgate.meters.query('tokens')).value).toBe(1013);
      });
    });

    // ── limits ──────────────────────────────────────────────────────────────
    group('limits', 'checks against limits', () => {
      it('allows while used < limit, then denies, with remaining and reset', async () => {
        const { tollgate } = await harness([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 3, period: 'minute' }]);
        for (let i = 0; i < 3; i++) {
          const d = await tollgate.limits.check({ customerId: 'c1' });
          expect(d.allowed).toBe(true);
          expect(d.limits[0]).toMatchObject({ limitId: 'rpm', used: i, remaining: 3 - i, exceeded: false, limit: 3 });
          await record(tollgate, 'c1');
        }
        const denied = await tollgate.limits.check({ customerId: 'c1' });
        expect(denied.allowed).toBe(false);
        expect(denied.limits[0]).toMatchObject({ used: 3, remaining: 0, exceeded: true, allowed: false, reset: Math.ceil((T0 - (T0 % MINUTE) + MINUTE) / 1000) });
        expect(denied.limits[0].windowStart).toBe(new Date(T0 - (T0 % MINUTE)).toISOString());
        expect(denied.retryAfter).toBe(30);
        expect((await tollgate.limits.check({ customerId: 'c2' })).retryAfter).toBeNull();
        expect((await tollgate.limits.check({ customerId: 'c2' })).allowed).toBe(true);
      });

      it('never changes state', async () => {
        const { tollgate } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' }]);
        await record(tollgate, 'c1', { tokens: 40 });
        for (let i = 0; i < 20; i++) await tollgate.limits.check({ customerId: 'c1', estimate: { tokens: 10 } });
        expect((await tollgate.limits.check({ customerId: 'c1' })).limits[0].used).toBe(40);
        expect((await tollgate.events.getSummary()).totalEvents).toBe(1);
        await expect(tollgate.customers.retrieve('never-seen')).rejects.toMatchObject({ code: 'customer_not_found' });
        await tollgate.limits.check({ customerId: 'never-seen' });
        await expect(tollgate.customers.retrieve('never-seen')).rejects.toMatchObject({ code: 'customer_not_found' });
      });

      it('counts an estimate as its contribution: 1 for count, the field for sum, the value for max', async () => {
        const { tollgate } = await harness([
          { id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' },
          { id: 'peak', name: 'Peak', meterId: 'peak', limitValue: 10, period: 'day' },
        ]);
        await record(tollgate, 'c1', { tokens: 60, concurrency: 4 });
        expect((await tollgate.limits.check({ customerId: 'c1', estimate: { tokens: 40 } })).allowed).toBe(true);
        expect((await tollgate.limits.check({ customerId: 'c1', estimate: { tokens: 41 } })).allowed).toBe(false);
        expect((await tollgate.limits.check({ customerId: 'c1', estimate: { tokens: 1, concurrency: 10 } })).allowed).toBe(true);
        expect((await tollgate.limits.check({ customerId: 'c1', estimate: { tokens: 1, concurrency: 11 } })).allowed).toBe(false);
        const { tollgate: t2 } = await harness([{ id: 'req', name: 'Requests', meterId: 'requests', limitValue: 2, period: 'day' }]);
        await record(t2, 'c1');
        expect((await t2.limits.check({ customerId: 'c1', estimate: { tokens: 999 } })).allowed).toBe(true);
        await record(t2, 'c1');
        expect((await t2.limits.check({ customerId: 'c1', estimate: { tokens: 1 } })).allowed).toBe(false);
      });

      it("enforces both the customer's own limits and the default limits", async () => {
        const { tollgate } = await harness([
          { id: 'default-day', name: 'Default daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' },
          { id: 'vip-minute', name: 'VIP tokens per minute', meterId: 'tokens', limitValue: 50, period: 'minute', customerId: 'vip' },
        ]);
        await record(tollgate, 'vip', { tokens: 50 });
        await record(tollgate, 'plain', { tokens: 50 });
        const vip = await tollgate.limits.check({ customerId: 'vip' });
        expect(vip.limits.map((l) => l.limitId).sort()).toEqual(['default-day', 'vip-minute']);
        expect(vip.allowed).toBe(false);
        const plain = await tollgate.limits.check({ customerId: 'plain' });
        expect(plain.limits.map((l) => l.limitId)).toEqual(['default-day']);
        expect(plain.allowed).toBe(true);
        await record(tollgate, 'vip', { tokens: 960 });
        expect((await tollgate.limits.check({ customerId: 'vip' })).limits.find((l) => l.limitId === 'default-day')!.exceeded).toBe(true);
      });

      it('applies dimension filters and event filters as DESIGN §2 says', async () => {
        const { tollgate } = await harness([
          { id: 'gpt-tokens', name: 'gpt tokens', meterId: 'tokens', limitValue: 100, period: 'day', dimensionFilters: { model: 'gpt' } },
          { id: 'completions', name: 'Completions', meterId: 'completions', limitValue: 5, period: 'day' },
        ]);
        await tollgate.events.record({ customerId: 'c', eventType: 'llm.completion', values: { tokens: 70 }, dimensions: { model: 'gpt' } });
        await tollgate.events.record({ customerId: 'c', eventType: 'llm.completion', values: { tokens: 500 }, dimensions: { model: 'claude' } });
        await tollgate.events.record({ customerId: 'c', eventType: 'llm.completion', values: { tokens: 500 } });
        await tollgate.events.record({ customerId: 'c', eventType: 'embedding', values: { tokens: 5 }, dimensions: { model: 'gpt' } });
        const gpt = await tollgate.limits.check({ customerId: 'c', eventType: 'llm.completion', dimensions: { model: 'gpt' } });
        expect(gpt.limits.map((l) => [l.limitId, l.used]).sort()).toEqual([['completions', 3], ['gpt-tokens', 75]]);
        const claude = await tollgate.limits.check({ customerId: 'c', eventType: 'llm.completion', dimensions: { model: 'claude' } });
        expect(claude.limits.map((l) => l.limitId)).toEqual(['completions']);
        const unmentioned = await tollgate.limits.check({ customerId: 'c' });
        expect(unmentioned.limits.map((l) => l.limitId).sort()).toEqual(['completions', 'gpt-tokens']);
        const otherType = await tollgate.limits.check({ customerId: 'c', eventType: 'embedding' });
        expect(otherType.limits.map((l) => l.limitId)).toEqual(['gpt-tokens']);
      });

      it('never denies on a soft limit but reports it exceeded', async () => {
        const { tollgate } = await harness([{ id: 'soft', name: 'Soft', meterId: 'requests', limitValue: 1, period: 'day', mode: 'soft' }]);
        await record(tollgate, 'c');
        await record(tollgate, 'c');
        const d = await tollgate.limits.check({ customerId: 'c' });
        expect(d.allowed).toBe(true);
        expect(d.limits[0]).toMatchObject({ mode: 'soft', used: 2, exceeded: true, allowed: true, remaining: 0 });
        const r = await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 1 } });
        expect(r.allowed).toBe(true);
      });

      it('resets with the window and lands backdated events in their own window', async () => {
        const { tollgate, advance, now } = await harness([
          { id: 'rpm', name: 'rpm', meterId: 'requests', limitValue: 2, period: 'minute' },
          { id: 'daily', name: 'daily', meterId: 'tokens', limitValue: 100, period: 'day' },
        ]);
        await record(tollgate, 'c', { tokens: 10 });
        await record(tollgate, 'c', { tokens: 10 });
        expect((await tollgate.limits.check({ customerId: 'c' })).allowed).toBe(false);
        advance(MINUTE);
        const next = await tollgate.limits.check({ customerId: 'c' });
        expect(next.allowed).toBe(true);
        expect(next.limits.map((l) => [l.limitId, l.used]).sort()).toEqual([['daily', 20], ['rpm', 0]]);
        await record(tollgate, 'c', { tokens: 500 }, { timestamp: new Date(now() - DAY) });
        const today = await tollgate.limits.check({ customerId: 'c' });
        expect(today.limits.find((l) => l.limitId === 'daily')!.used).toBe(20);
        expect((await tollgate.meters.query('tokens', { customerId: 'c', startDate: new Date(now() - 2 * DAY), endDate: new Date(now() - DAY / 2) })).value).toBe(500);
        advance(DAY);
        expect((await tollgate.limits.check({ customerId: 'c' })).limits.find((l) => l.limitId === 'daily')!.used).toBe(0);
      });

      it('backfills a limit created after events exist from the ledger', async () => {
        const { tollgate } = await harness();
        await record(tollgate, 'c', { tokens: 30 });
        await record(tollgate, 'c', { tokens: 45 });
        await tollgate.limits.create({ id: 'late', name: 'Late', meterId: 'tokens', limitValue: 100, period: 'day' });
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(75);
        await tollgate.limits.update('late', { dimensionFilters: { model: 'm' } });
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(0);
      });

      it('counts what was recorded meanwhile when a limit is changed and changed back', async () => {
        const { tollgate, advance } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' }]);
        await record(tollgate, 'c', { tokens: 50 });
        advance(1000);
        await tollgate.limits.update('tok', { period: 'month' });
        await record(tollgate, 'c', { tokens: 40 });
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(90);
        advance(1000);
        // The day's counter from before the change missed the 40: it must not come back.
        await tollgate.limits.update('tok', { period: 'day' });
        const back = await tollgate.limits.check({ customerId: 'c', estimate: { tokens: 20 } });
        expect(back.limits[0]).toMatchObject({ period: 'day', used: 90, remaining: 10 });
        expect(back.allowed).toBe(false);
        // A meter changed and changed back, likewise.
        advance(1000);
        await tollgate.meters.update('tokens', { eventFilter: { eventType: 'image.generation' } });
        await record(tollgate, 'c', { tokens: 5 });
        advance(1000);
        await tollgate.meters.update('tokens', { eventFilter: null });
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(95);
      });

      it('follows the customer timezone for days and the billing anchor for months', async () => {
        const { tollgate } = await harness([
          { id: 'day', name: 'Day', meterId: 'requests', limitValue: 100, period: 'day' },
          { id: 'month', name: 'Month', meterId: 'requests', limitValue: 100, period: 'month' },
        ]);
        await tollgate.customers.create({ id: 'tokyo', timezone: 'Asia/Tokyo', billingCycleStart: '2026-01-31T10:00:00+09:00' });
        const d = await tollgate.limits.check({ customerId: 'tokyo' });
        const day = d.limits.find((l) => l.limitId === 'day')!;
        const month = d.limits.find((l) => l.limitId === 'month')!;
        expect(day.windowStart).toBe('2026-03-09T15:00:00.000Z');
        expect(day.windowEnd).toBe('2026-03-10T15:00:00.000Z');
        // Anchor on the 31st: February's cycle starts on the 28th, March's on the 31st.
        expect(month.windowStart).toBe('2026-02-27T15:00:00.000Z');
        expect(month.windowEnd).toBe('2026-03-30T15:00:00.000Z');
      });

      it('keeps the windows and counts of each customer when customers in different timezones interleave', async () => {
        const limits: CreateLimitInput[] = [
          { id: 'day', name: 'Day', meterId: 'requests', limitValue: 100, period: 'day' },
          { id: 'month', name: 'Month', meterId: 'requests', limitValue: 100, period: 'month' },
          { id: 'minute', name: 'Minute', meterId: 'requests', limitValue: 100, period: 'minute' },
        ];
        const customers = [
          { id: 'tokyo', timezone: 'Asia/Tokyo', billingCycleStart: '2026-01-31T10:00:00+09:00' },
          { id: 'ny', timezone: 'America/New_York', billingCycleStart: '2026-01-15T00:00:00-05:00' },
          { id: 'plain', billingCycleStart: '2026-02-03T00:00:00Z' },
        ];
        const windowsOf = (d: CheckResult) => d.limits.map((l) => [l.limitId, l.windowStart, l.windowEnd]);
        // Each customer alone in an engine of its own: nothing cached from another customer.
        const alone = new Map<string, unknown>();
        for (const c of customers) {
          const { tollgate } = await harness(limits);
          await tollgate.customers.create(c);
          alone.set(c.id, windowsOf(await tollgate.limits.check({ customerId: c.id })));
        }
        expect(new Set([...alone.values()].map((w) => JSON.stringify(w))).size).toBe(3);
        // All three in one engine, taking turns.
        const { tollgate } = await harness(limits);
        for (const c of customers) await tollgate.customers.create(c);
        const turns = ['tokyo', 'ny', 'tokyo', 'plain', 'ny', 'plain', 'tokyo', 'tokyo', 'ny'];
        for (const id of turns) {
          expect(windowsOf(await tollgate.limits.check({ customerId: id }))).toEqual(alone.get(id));
          await tollgate.events.record({ customerId: id, eventType: 'api.call' });
        }
        for (const c of customers) {
          const d = await tollgate.limits.check({ customerId: c.id });
          expect(windowsOf(d)).toEqual(alone.get(c.id));
          const count = turns.filter((t) => t === c.id).length;
          expect(d.limits.map((l) => l.used)).toEqual(limits.map(() => count));
        }
      });

      it('counts distinct values for unique meters', async () => {
        const { tollgate } = await harness([{ id: 'seats', name: 'Seats', meterId: 'users', limitValue: 2, period: 'month' }]);
        await tollgate.events.record({ customerId: 'c', eventType: 'x', dimensions: { user_id: 'u1' } });
        await tollgate.events.record({ customerId: 'c', eventType: 'x', dimensions: { user_id: 'u1' } });
        await tollgate.events.record({ customerId: 'c', eventType: 'x', dimensions: { user_id: 'u2' } });
        const d = await tollgate.limits.check({ customerId: 'c' });
        expect(d.limits[0]).toMatchObject({ used: 2, exceeded: true });
        expect((await tollgate.limits.check({ customerId: 'c', dimensions: { user_id: 'u2' }, estimate: {} })).allowed).toBe(true);
        expect((await tollgate.limits.check({ customerId: 'c', dimensions: { user_id: 'u3' }, estimate: {} })).allowed).toBe(false);
      });
    });

    // ── reservations ────────────────────────────────────────────────────────
    group('reservations', 'reservations', () => {
      it('lets exactly as many concurrent reservations through as fit', async () => {
        const { tollgate } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' }]);
        await record(tollgate, 'c', { tokens: 95 });
        const results = await Promise.all(Array.from({ length: 20 }, () => tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 1 } })));
        expect(results.filter((r) => r.allowed)).toHaveLength(5);
        const denied = results.find((r) => !r.allowed)!;
        expect(denied.limits[0]).toMatchObject({ used: 100, allowed: false });
        await Promise.all(results.filter((r) => r.allowed).map((r) => r.commit()));
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(100);
        expect((await tollgate.events.getSummary({ customerId: 'c' })).values.tokens).toBe(100);
      });

      it('decides all applicable limits at once: a denial holds nothing', async () => {
        const { tollgate } = await harness([
          { id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' },
          { id: 'req', name: 'Requests', meterId: 'requests', limitValue: 1, period: 'day' },
        ]);
        await record(tollgate, 'c', { tokens: 10 });
        const r = await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 50 } });
        expect(r.allowed).toBe(false);
        expect(r.limits.map((l) => [l.limitId, l.allowed]).sort()).toEqual([['req', false], ['tok', true]]);
        expect(r.retryAfter).toBeGreaterThan(0);
        await expect(r.commit()).rejects.toMatchObject({ code: 'limit_exceeded' });
        expect((await tollgate.limits.check({ customerId: 'c' })).limits.find((l) => l.limitId === 'tok')!.used).toBe(10);
      });

      it('holds the estimate until commit, which records the real usage once', async () => {
        const { tollgate } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' }]);
        const r = await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 60 }, dimensions: { model: 'm' } });
        expect(r.allowed).toBe(true);
        expect(r.limits[0].used).toBe(60);
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(60);
        expect((await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 41 } })).allowed).toBe(false);
        const committed = await r.commit({ values: { tokens: 25 } });
        expect(committed.recorded).toBe(true);
        expect(await r.commit({ values: { tokens: 25 } })).toEqual({ id: committed.id, recorded: false });
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(25);
        const events = await tollgate.events.list({ customerId: 'c' });
        expect(events.data).toHaveLength(1);
        expect(events.data[0]).toMatchObject({ values: { tokens: 25 }, dimensions: { model: 'm' }, idempotencyKey: r.id });
      });

      it('keeps many open holds on one limit exact as they are released, committed and lapse', async () => {
        const { tollgate, advance } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
        const used = async () => (await tollgate.limits.check({ customerId: 'c' })).limits[0].used;
        const hold = (tokens: number, ttlMs?: number) => tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens }, ttlMs });
        const short = await Promise.all(Array.from({ length: 20 }, () => hold(3, 1000)));
        const long = await Promise.all(Array.from({ length: 20 }, () => hold(5)));
        expect(await used()).toBe(160);
        await Promise.all(long.slice(0, 10).map((r) => r.release()));
        await Promise.all(long.slice(10, 15).map((r) => r.commit({ values: { tokens: 1 } })));
        expect(await used()).toBe(60 + 25 + 5);
        advance(1001);
        expect(await used()).toBe(25 + 5);
        // A commit after its hold lapsed still records, once.
        await Promise.all(short.slice(0, 5).map((r) => r.commit({ values: { tokens: 2 } })));
        await Promise.all(short.slice(0, 5).map((r) => r.commit({ values: { tokens: 2 } })));
        expect(await used()).toBe(25 + 5 + 10);
        expect((await tollgate.events.getSummary({ customerId: 'c' })).totalEvents).toBe(10);
      });

      it("counts the newest reservation's hold for a latest meter, whatever the holds' ttl", async () => {
        const { tollgate, advance } = await harness();
        await tollgate.meters.create({ id: 'last-latency', name: 'Latest latency', aggregation: 'latest', field: 'values.latency' });
        await tollgate.limits.create({ id: 'lat', name: 'Latest latency', meterId: 'last-latency', limitValue: 1000, period: 'day' });
        const used = async () => (await tollgate.limits.check({ customerId: 'c' })).limits[0].used;
        const hold = (latency: number, ttlMs: number) => tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { latency }, ttlMs });
        const older = await hold(50, 600_000);
        expect(await used()).toBe(50);
        // The newer hold counts although it lapses first (a store ordering by expiry would read 50).
        const newer = await hold(20, 60_000);
        expect(newer.limits[0].used).toBe(20);
        expect(await used()).toBe(20);
        const newest = await hold(30, 300_000);
        expect(await used()).toBe(30);
        await newest.release();
        expect(await used()).toBe(20);
        advance(60_001);
        expect(await used()).toBe(50);
        await older.commit({ values: { latency: 40 } });
        expect(await used()).toBe(40);
      });

      it('keys each commit by its reservation id: concurrent commits and later records with that key count once', async () => {
        const { tollgate } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
        const a = await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 10 } });
        const b = await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 20 } });
        const commits = await Promise.all([a.commit(), a.commit()]);
        expect(commits.map((c) => c.recorded).sort()).toEqual([false, true]);
        expect(commits[0].id).toBe(commits[1].id);
        await b.commit({ values: { tokens: 5 } });
        const again = (key: string) => tollgate.events.record({ customerId: 'c', eventType: 'llm.completion', values: { tokens: 99 }, idempotencyKey: key });
        expect(await again(a.id)).toEqual({ id: commits[0].id, recorded: false });
        expect(await again(b.id)).toMatchObject({ recorded: false });
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(15);
        expect((await tollgate.events.getSummary({ customerId: 'c' })).values.tokens).toBe(15);
      });

      it('drops the hold on release and when its ttl lapses', async () => {
        const { tollgate, advance } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' }]);
        const a = await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 70 } });
        await a.release();
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(0);
        const b = await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 70 }, ttlMs: 5000 });
        expect(b.allowed).toBe(true);
        advance(4999);
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(70);
        advance(2);
        expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(0);
        expect((await tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 100 } })).allowed).toBe(true);
      });
    });

    // ── alerts ──────────────────────────────────────────────────────────────
    group('alerts', 'alerts', () => {
      it('fires each threshold once per window, and again in the next window', async () => {
        const { tollgate, alerts, advance } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'minute', alertThresholds: [50, 80] }]);
        await record(tollgate, 'c', { tokens: 49 });
        expect(alerts).toHaveLength(0);
        await record(tollgate, 'c', { tokens: 1 });
        await record(tollgate, 'c', { tokens: 1 });
        expect(alerts.map((a) => [a.type, a.threshold])).toEqual([['limit.threshold_reached', 50]]);
        await record(tollgate, 'c', { tokens: 60 });
        expect(alerts.map((a) => [a.type, a.threshold])).toEqual([['limit.threshold_reached', 50], ['limit.threshold_reached', 80], ['limit.exceeded', 100]]);
        expect(alerts[2]).toMatchObject({ customerId: 'c', limitId: 'tok', limitName: 'Tokens', limit: 100, used: 111, remaining: 0, period: 'minute' });
        await record(tollgate, 'c', { tokens: 60 });
        expect(alerts).toHaveLength(3);
        advance(MINUTE);
        await record(tollgate, 'c', { tokens: 80 });
        expect(alerts.slice(3).map((a) => a.threshold)).toEqual([50, 80]);
      });

      it('alerts against a limit raised mid-window, as usage crosses its thresholds from then on', async () => {
        const { tollgate, alerts, advance } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day', alertThresholds: [50] }]);
        await record(tollgate, 'c', { tokens: 60 });
        expect(alerts.map((a) => [a.threshold, a.limit, a.used])).toEqual([[50, 100, 60]]);
        advance(1000);
        await tollgate.limits.update('tok', { limitValue: 200 }); // a plan upgrade
        await record(tollgate, 'c', { tokens: 30 });
        expect(alerts).toHaveLength(1);
        await record(tollgate, 'c', { tokens: 20 });
        await record(tollgate, 'c', { tokens: 100 });
        expect(alerts.slice(1).map((a) => [a.type, a.threshold, a.limit, a.used])).toEqual([
          ['limit.threshold_reached', 50, 200, 110],
          ['limit.exceeded', 100, 200, 210],
        ]);
      });

      it('fires once when concurrent records cross a threshold together', async () => {
        const { tollgate, alerts } = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day', alertThresholds: [50] }]);
        await Promise.all(Array.from({ length: 30 }, () => record(tollgate, 'c', { tokens: 10 })));
        expect(alerts.filter((a) => a.threshold === 50)).toHaveLength(1);
        expect(alerts.filter((a) => a.type === 'limit.exceeded')).toHaveLength(1);
      });
    });

    // ── shared ──────────────────────────────────────────────────────────────
    group('shared', 'several engines on one store', () => {
      it('sees definitions, counters and holds of another engine', async () => {
        const h = await harness([{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day' }]);
        if (!h.shared) throw new Error(`${options.name} does not declare capabilities.shared: switch the "shared" group off in its conformance options`);
        const other = h.second();
        await other.ready();
        await record(h.tollgate, 'c', { tokens: 30 });
        const held = await h.tollgate.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 50 } });
        expect(held.allowed).toBe(true);
        expect((await other.limits.check({ customerId: 'c' })).limits[0].used).toBe(80);
        expect((await other.reserve({ customerId: 'c', eventType: 'llm.completion', estimate: { tokens: 21 } })).allowed).toBe(false);
        await h.tollgate.limits.update('tok', { limitValue: 200 });
        const after = await other.limits.check({ customerId: 'c' });
        expect(after.limits[0].limit).toBe(200);
      });
    });
  });
}

/**
 * For tests on the real clock: when fewer than `marginMs` remain in the current window of
 * `periodMs` (an epoch-aligned UTC window, as minute and hour limits use), waits until the next
 * one begins, so the calls a test makes next all land in one window. Without it, a test that
 * counts usage under a per-minute limit fails now and then, when a minute ends in its middle.
 *
 * @example beforeEach(() => clearOfWindowEnd()); // per-minute limits, tests shorter than ~2 s
 */
export async function clearOfWindowEnd(periodMs = 60_000, marginMs = 2_000): Promise<void> {
  const left = periodMs - (Date.now() % periodMs);
  if (left < marginMs) await new Promise((resolve) => setTimeout(resolve, left + 10));
}

export { TollgateError };
