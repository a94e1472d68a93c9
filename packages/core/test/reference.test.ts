import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createTollgate, type RecordEventInput } from '@tollgate/core';

const BASE = Date.parse('2026-05-01T00:00:00Z');
const HOUR = 3_600_000;

const eventArb = fc.record({
  customerId: fc.constantFrom('c0', 'c1', 'c2'),
  eventType: fc.constantFrom('llm.completion', 'api.call'),
  model: fc.option(fc.constantFrom('m0', 'm1', 'm2'), { nil: undefined }),
  user: fc.constantFrom('u0', 'u1', 'u2', 'u3'),
  tokens: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }),
  latency: fc.integer({ min: 1, max: 500 }),
  offset: fc.integer({ min: 0, max: 72 * HOUR - 1 }),
});
type Gen = typeof eventArb extends fc.Arbitrary<infer T> ? T : never;

const filterArb = fc.record({
  customerId: fc.option(fc.constantFrom('c0', 'c1', 'c2'), { nil: undefined }),
  eventType: fc.option(fc.constantFrom('llm.completion', 'api.call'), { nil: undefined }),
  model: fc.option(fc.constantFrom('m0', 'm1', 'm2'), { nil: undefined }),
  start: fc.option(fc.integer({ min: 0, max: 72 * HOUR }), { nil: undefined }),
  end: fc.option(fc.integer({ min: 0, max: 72 * HOUR }), { nil: undefined }),
});
type Filter = typeof filterArb extends fc.Arbitrary<infer T> ? T : never;

function matches(e: Gen, f: Filter): boolean {
  return (f.customerId === undefined || e.customerId === f.customerId)
    && (f.eventType === undefined || e.eventType === f.eventType)
    && (f.model === undefined || e.model === f.model)
    && (f.start === undefined || e.offset >= f.start)
    && (f.end === undefined || e.offset < f.end);
}

function totals(events: Gen[]) {
  const values: Record<string, number> = {};
  for (const e of events) {
    if (e.tokens !== undefined) values.tokens = (values.tokens ?? 0) + e.tokens;
    values.latency = (values.latency ?? 0) + e.latency;
  }
  return { totalEvents: events.length, values };
}

function query(f: Filter) {
  return {
    customerId: f.customerId,
    eventType: f.eventType,
    dimensions: f.model === undefined ? undefined : { model: f.model },
    startDate: f.start === undefined ? undefined : new Date(BASE + f.start),
    endDate: f.end === undefined ? undefined : new Date(BASE + f.end),
  };
}

async function load(events: Gen[]) {
  const tollgate = createTollgate({
    meters: [
      { id: 'sum', name: 'sum', aggregation: 'sum', field: 'values.tokens' },
      { id: 'count', name: 'count', aggregation: 'count', field: '*' },
      { id: 'max', name: 'max', aggregation: 'max', field: 'values.latency' },
      { id: 'min', name: 'min', aggregation: 'min', field: 'values.latency' },
      { id: 'avg', name: 'avg', aggregation: 'avg', field: 'values.tokens' },
      { id: 'latest', name: 'latest', aggregation: 'latest', field: 'values.latency' },
      { id: 'unique', name: 'unique', aggregation: 'unique', field: 'dimensions.user_id' },
    ],
  });
  const input = events.map((e): RecordEventInput => ({
    customerId: e.customerId,
    eventType: e.eventType,
    values: e.tokens === undefined ? { latency: e.latency } : { tokens: e.tokens, latency: e.latency },
    dimensions: e.model === undefined ? { user_id: e.user } : { model: e.model, user_id: e.user },
    timestamp: new Date(BASE + e.offset),
  }));
  for (let i = 0; i < input.length; i += 1000) await tollgate.events.batchIngest({ events: input.slice(i, i + 1000) });
  return tollgate;
}

describe('usage queries against a naive reference over random event streams', () => {
  test('summary, breakdown, timeseries and every meter aggregation', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(eventArb, { minLength: 0, maxLength: 300 }), fc.array(filterArb, { minLength: 1, maxLength: 5 }), async (events, filters) => {
        const tollgate = await load(events);
        for (const f of filters) {
          const selected = events.filter((e) => matches(e, f));
          expect(await tollgate.events.getSummary(query(f))).toEqual(totals(selected));

          const groups = new Map<string | null, Gen[]>();
          for (const e of selected) groups.set(e.model ?? null, [...(groups.get(e.model ?? null) ?? []), e]);
          const breakdown = await tollgate.events.getBreakdown({ ...query(f), dimensions: undefined, groupBy: 'model' });
          const expectedBreakdown = events.filter((e) => matches(e, { ...f, model: undefined }));
          const byModel = new Map<string | null, Gen[]>();
          for (const e of expectedBreakdown) byModel.set(e.model ?? null, [...(byModel.get(e.model ?? null) ?? []), e]);
          expect(new Map(breakdown.data.map((r) => [r.dimension, { totalEvents: r.totalEvents, values: r.values }]))).toEqual(new Map([...byModel].map(([k, v]) => [k, totals(v)])));
          for (let i = 1; i < breakdown.data.length; i++) expect(breakdown.data[i - 1].totalEvents).toBeGreaterThanOrEqual(breakdown.data[i].totalEvents);

          const series = await tollgate.events.getTimeseries({ ...query(f), interval: 'hour', startDate: new Date(BASE), endDate: new Date(BASE + 72 * HOUR) });
          expect(series.data).toHaveLength(72);
          series.data.forEach((p, h) => {
            expect(p).toEqual({
              start: new Date(BASE + h * HOUR).toISOString(),
              end: new Date(BASE + (h + 1) * HOUR).toISOString(),
              ...totals(events.filter((e) => matches(e, { ...f, start: undefined, end: undefined }) && Math.floor(e.offset / HOUR) === h)),
            });
          });

          const q = { customerId: f.customerId, dimensions: f.model === undefined ? undefined : { model: f.model }, startDate: query(f).startDate, endDate: query(f).endDate };
          const pool = events.filter((e) => matches(e, { ...f, eventType: undefined }));
          const tokens = pool.filter((e) => e.tokens !== undefined).map((e) => e.tokens!);
          const latencies = pool.map((e) => e.latency);
          const value = async (id: string) => (await tollgate.meters.query(id, q)).value;
          expect(await value('sum')).toBe(tokens.reduce((a, b) => a + b, 0));
          expect(await value('count')).toBe(pool.length);
          expect(await value('max')).toBe(latencies.length ? Math.max(...latencies) : 0);
          expect(await value('min')).toBe(latencies.length ? Math.min(...latencies) : 0);
          expect(await value('avg')).toBeCloseTo(tokens.length ? tokens.reduce((a, b) => a + b, 0) / tokens.length : 0, 9);
          expect(await value('unique')).toBe(new Set(pool.map((e) => e.user)).size);
          const newest = [...pool].sort((a, b) => a.offset - b.offset).filter((e, _, arr) => e.offset === arr[arr.length - 1].offset);
          if (newest.length) expect(newest.map((e) => e.latency)).toContain(await value('latest'));
          else expect(await value('latest')).toBe(0);
        }
      }),
      { numRuns: 60 },
    );
  });
});
