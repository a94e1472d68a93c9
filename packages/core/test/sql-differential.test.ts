/**
 * One random stream of operations — records, batches with duplicate idempotency keys, backdated
 * events, reservations committed, released and abandoned, checks, a limit created late and one
 * updated — applied in lockstep to the memory store (the reference), SQLite and Postgres through
 * the public engine. Every answer must be identical: records, decisions, alerts, list pages,
 * summaries, breakdowns, timeseries and meter values.
 *
 * Ids are made deterministic so that list pages with equal timestamps order the same way.
 * Values are integers and quarters, whose sums are exact in any order. Set TOLLGATE_DIFF_SEED
 * to replay a failing stream.
 */
import { afterAll, describe, expect, test, vi } from 'vitest';
import type { CreateLimitInput, CreateMeterInput, Tollgate } from '@tollgate/core';
import { lockstepSubjects, same as sameIn, type Subject } from './fixtures/sql-lockstep.js';

const ids = vi.hoisted(() => ({ next: 0 }));
vi.mock('../src/ids.js', () => ({
  newId: (prefix: string, at: number = Date.now()) => `${prefix}_${at.toString(36).padStart(9, '0')}${(ids.next++).toString(36).padStart(12, '0')}`,
  // The memory store reads these ids from their digits.
  idPartsOf: () => undefined,
}));

const SEED = Number(process.env.TOLLGATE_DIFF_SEED ?? Math.floor(Math.random() * 2 ** 31));
const OPERATIONS = 400;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const customers = ['acme', 'globex', 'initech', "o'brien; DROP TABLE x; --", 'ünïcödé-🚀'];
const eventTypes = ['llm.completion', 'api.call', 'embedding'];

const meters: CreateMeterInput[] = [
  { id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' },
  { id: 'requests', name: 'Requests', aggregation: 'count', field: '*' },
  { id: 'completions', name: 'Completions', aggregation: 'count', field: '*', eventFilter: { eventType: 'llm.completion' } },
  { id: 'peak-latency', name: 'Peak latency', aggregation: 'max', field: 'values.latency' },
  { id: 'fastest', name: 'Fastest', aggregation: 'min', field: 'values.latency' },
  { id: 'last-tokens', name: 'Last tokens', aggregation: 'latest', field: 'values.tokens' },
  { id: 'avg-cost', name: 'Average cost', aggregation: 'avg', field: 'values.cost' },
  { id: 'users', name: 'Users', aggregation: 'unique', field: 'dimensions.user_id' },
  { id: 'model-a-tokens', name: 'Model a tokens', aggregation: 'sum', field: 'values.tokens', eventFilter: { dimensions: { model: 'a' } } },
];

const limits: CreateLimitInput[] = [
  { id: 'tokens-day', name: 'Tokens per day', meterId: 'tokens', limitValue: 20_000, period: 'day', alertThresholds: [50, 80] },
  { id: 'requests-hour', name: 'Requests per hour', meterId: 'requests', limitValue: 30, period: 'hour', alertThresholds: [90] },
  { id: 'completions-30m', name: 'Completions per 30m', meterId: 'completions', limitValue: 10, period: '30m' },
  { id: 'peak-day', name: 'Peak latency', meterId: 'peak-latency', limitValue: 450, period: 'day' },
  { id: 'fastest-day', name: 'Fastest', meterId: 'fastest', limitValue: 100, period: 'day', mode: 'soft' },
  { id: 'last-hour', name: 'Last tokens', meterId: 'last-tokens', limitValue: 1500, period: 'hour' },
  { id: 'avg-cost-day', name: 'Average cost', meterId: 'avg-cost', limitValue: 6, period: 'day', mode: 'soft', alertThresholds: [50] },
  { id: 'users-month', name: 'Users per month', meterId: 'users', limitValue: 6, period: 'month', alertThresholds: [50] },
  { id: 'acme-minute', name: 'Acme tokens per minute', meterId: 'tokens', limitValue: 3000, period: 'minute', customerId: 'acme', mode: 'soft', alertThresholds: [25, 75] },
  { id: 'eu-tokens', name: 'EU tokens', meterId: 'tokens', limitValue: 60_000, period: 'all_time', dimensionFilters: { region: 'eu' }, alertThresholds: [10, 20, 30] },
];

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('memory, SQLite and Postgres answer one random stream identically', () => {
  test(`seed ${SEED}`, async () => {
    const rand = mulberry32(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
    let clock = Date.parse('2026-03-28T21:40:00.000Z'); // crosses a day, a month end and the EU DST change
    const start = clock;

    const subjects = lockstepSubjects('differential test', { meters, limits, now: () => clock }, cleanups);
    const reservations = new Map<string, Map<number, Awaited<ReturnType<Tollgate['reserve']>>>>(subjects.map((s) => [s.name, new Map()]));
    const same = <R>(label: string, fn: (s: Subject) => Promise<R>) => sameIn(ids, subjects, `${label} (seed ${SEED})`, fn);

    const randomEvent = () => {
      const values: Record<string, number> = {};
      if (rand() < 0.85) values.tokens = int(0, 2000);
      if (rand() < 0.6) values.cost = int(0, 40) / 4;
      if (rand() < 0.5) values.latency = int(1, 500);
      const dimensions: Record<string, string> = {};
      if (rand() < 0.8) dimensions.model = pick(['a', 'b', 'c']);
      if (rand() < 0.6) dimensions.region = pick(['eu', 'us']);
      if (rand() < 0.5) dimensions.user_id = `u${int(0, 9)}`;
      const event: Record<string, unknown> = { customerId: pick(customers), eventType: pick(eventTypes), values, dimensions };
      // Backdated to whole seconds so several events share a timestamp.
      if (rand() < 0.3) event.timestamp = new Date(Math.floor((clock - int(0, 2 * DAY)) / 1000) * 1000);
      if (rand() < 0.2) event.idempotencyKey = `k${int(0, 40)}`;
      if (rand() < 0.2) event.properties = { note: pick(['x', 'y']), n: int(0, 9), nested: { ok: rand() < 0.5 } };
      return event;
    };

    await same('customers', async (s) => {
      await s.tollgate.customers.create({ id: 'globex', timezone: 'America/New_York', billingCycleStart: '2026-01-31T12:00:00Z' });
      await s.tollgate.customers.create({ id: 'initech', timezone: 'Asia/Kolkata', metadata: { plan: 'pro' } });
      return s.tollgate.customers.list();
    });

    for (let op = 0; op < OPERATIONS; op++) {
      const r = rand();
      if (r < 0.3) {
        const event = randomEvent();
        await same(`op ${op} record`, (s) => s.tollgate.events.record(event as never));
      } else if (r < 0.45) {
        const events = Array.from({ length: int(1, 40) }, randomEvent);
        await same(`op ${op} batch of ${events.length}`, (s) => s.tollgate.events.batchIngest({ events: events as never }));
      } else if (r < 0.6) {
        const input = { customerId: pick(customers), eventType: pick(eventTypes), estimate: { tokens: int(1, 3000), latency: int(1, 400), cost: int(0, 8) / 4 }, dimensions: rand() < 0.5 ? { model: pick(['a', 'b']), region: pick(['eu', 'us']), user_id: `u${int(0, 12)}` } : undefined, ttlMs: int(1000, 20 * 60_000) };
        await same(`op ${op} reserve`, async (s) => {
          const reservation = await s.tollgate.reserve(input);
          reservations.get(s.name)!.set(op, reservation);
          const { commit: _c, release: _r, ...rest } = reservation;
          return rest;
        });
      } else if (r < 0.72) {
        const open = [...reservations.get('memory')!.keys()];
        if (open.length === 0) continue;
        const which = pick(open);
        const action = rand();
        const values = { tokens: int(0, 2500), cost: int(0, 8) / 4 };
        await same(`op ${op} settle reservation ${which}`, async (s) => {
          const reservation = reservations.get(s.name)!.get(which)!;
          if (action < 0.6) return reservation.commit({ values });
          if (action < 0.8) return reservation.release();
          return reservation.commit(); // twice, or the estimate
        });
        if (action >= 0.6 && action < 0.8) for (const held of reservations.values()) held.delete(which);
      } else if (r < 0.9) {
        const input = { customerId: pick(customers), eventType: rand() < 0.7 ? pick(eventTypes) : undefined, dimensions: rand() < 0.5 ? { model: pick(['a', 'b', 'c']), user_id: `u${int(0, 12)}` } : undefined, estimate: rand() < 0.5 ? { tokens: int(1, 3000), latency: int(1, 500) } : undefined };
        await same(`op ${op} check`, (s) => s.tollgate.limits.check(input));
      } else {
        clock += rand() < 0.1 ? int(6 * HOUR, DAY) : int(1000, 20 * 60_000);
      }
      if (op === Math.floor(OPERATIONS / 2)) {
        // Created after events exist: backfilled from each ledger. Then one limit changes revision.
        await same('late limit', (s) => s.tollgate.limits.create({ id: 'late-week', name: 'Late', meterId: 'tokens', limitValue: 40_000, period: 'week', alertThresholds: [5, 50] }));
        await same('limit update', (s) => s.tollgate.limits.update('tokens-day', { limitValue: 15_000, dimensionFilters: { model: 'a' } }));
      }
      if (op % 100 === 99) await compareQueries(`after op ${op}`);
    }
    await compareQueries('at the end');
    await same('alerts', async (s) => s.alerts);
    expect(subjects[0].alerts.length).toBeGreaterThan(0);

    // The ledger as a counters-only store (Redis) would seed from it: states, distinct values, recent ids.
    for (const meter of meters) {
      for (const customerId of [undefined, 'globex', customers[3]]) {
        const source = { aggregation: meter.aggregation, field: meter.field, eventFilter: meter.eventFilter, dimensionFilters: rand() < 0.5 ? { region: 'eu' } : undefined, customerId, startDate: start - DAY, endDate: clock };
        await same(`meterState ${meter.id} ${customerId}`, (s) => s.store.meterState(source));
        await same(`seedState ${meter.id} ${customerId}`, async (s) => {
          const seed = await s.store.seedState!(source, clock - 6 * HOUR);
          return { ...seed, distinctValues: seed.distinctValues?.sort(), recentEventIds: seed.recentEventIds.sort() };
        });
      }
    }

    async function compareQueries(when: string) {
      const ranges = [{}, { startDate: new Date(start - DAY), endDate: new Date(clock - 2 * HOUR) }, { startDate: new Date(clock - 6 * HOUR) }];
      const filters: Array<{ customerId?: string; eventType?: string; dimensions?: Record<string, string> }> = [{}, { customerId: 'globex' }, { customerId: customers[3] }, { eventType: 'api.call' }, { dimensions: { model: 'a' } }, { dimensions: { model: 'b', region: 'eu' } }];
      for (const range of ranges) {
        for (const filter of filters) {
          const q = { ...range, ...filter };
          await same(`${when}: list ${JSON.stringify(q)}`, async (s) => {
            const pages = [];
            let cursor: string | undefined;
            for (let i = 0; i < 6; i++) {
              const page = await s.tollgate.events.list({ ...q, limit: 7, cursor });
              pages.push(page);
              if (!page.nextCursor) break;
              cursor = page.nextCursor;
            }
            return pages;
          });
          await same(`${when}: summary ${JSON.stringify(q)}`, (s) => s.tollgate.events.getSummary(q));
          for (const groupBy of ['customerId', 'eventType', 'model', 'region', 'user_id']) {
            await same(`${when}: breakdown by ${groupBy} ${JSON.stringify(q)}`, (s) => s.tollgate.events.getBreakdown({ ...q, groupBy }));
          }
        }
      }
      for (const [interval, timezone] of [['hour', undefined], ['day', 'America/New_York'], ['day', 'Europe/Berlin'], ['week', 'UTC']] as const) {
        for (const filter of filters.slice(0, 4)) {
          const input = { interval, timezone, startDate: new Date(start - 2 * DAY), endDate: new Date(clock + HOUR), ...filter };
          await same(`${when}: timeseries ${JSON.stringify(input)}`, (s) => s.tollgate.events.getTimeseries(input));
        }
      }
      for (const meter of meters) {
        for (const customerId of [undefined, ...customers]) {
          for (const range of ranges.slice(0, 2)) {
            await same(`${when}: meter ${meter.id} ${customerId}`, (s) => s.tollgate.meters.query(meter.id, { customerId, ...range }));
          }
        }
        await same(`${when}: meter ${meter.id} model b`, (s) => s.tollgate.meters.query(meter.id, { dimensions: { model: 'b' } }));
      }
      for (const customerId of customers) {
        await same(`${when}: check ${customerId}`, (s) => s.tollgate.limits.check({ customerId }));
      }
    }
  }, 300_000);

  test('totals over more value keys than the per-key columns allow', async () => {
    let clock = Date.parse('2026-03-01T10:00:00.000Z');
    const subjects = lockstepSubjects('differential test', { now: () => clock }, cleanups);
    const same = <R>(label: string, fn: (s: Subject) => Promise<R>) => sameIn(ids, subjects, label, fn);
    // 5 events × 64 keys, overlapping: 264 distinct value keys, past MAX_VALUE_COLUMNS (200).
    for (let e = 0; e < 5; e++) {
      const values = Object.fromEntries(Array.from({ length: 64 }, (_, k) => [`k${e * 50 + k}`, e + k / 4]));
      await same(`record ${e}`, (s) => s.tollgate.events.record({ customerId: `c${e % 2}`, eventType: 'wide', values, dimensions: { shard: `s${e % 3}` } }));
      clock += 3_600_000;
    }
    await same('summary', (s) => s.tollgate.events.getSummary());
    await same('summary of one customer', (s) => s.tollgate.events.getSummary({ customerId: 'c1' }));
    await same('breakdown', (s) => s.tollgate.events.getBreakdown({ groupBy: 'shard' }));
    await same('timeseries', (s) => s.tollgate.events.getTimeseries({ interval: 'hour', startDate: new Date(clock - 6 * 3_600_000), endDate: new Date(clock) }));
    const summary = await same('summary again', (s) => s.tollgate.events.getSummary());
    expect(Object.keys((summary as { value: { values: object } }).value.values)).toHaveLength(264);
  });
});
