import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, test } from 'vitest';
import { windowFor, type Window } from '@tollgate/core';

// Zones chosen for their DST rules: both hemispheres, half-hour and 45-minute offsets, Lord Howe's
// 30-minute shift, and zones whose DST change skips or repeats midnight itself.
const ZONES = [
  'UTC', 'Europe/Berlin', 'Europe/London', 'America/New_York', 'America/Los_Angeles', 'America/Sao_Paulo',
  'America/Santiago', 'America/Havana', 'America/Asuncion', 'Asia/Beirut', 'Asia/Tehran', 'Asia/Kolkata',
  'Asia/Kathmandu', 'Australia/Sydney', 'Australia/Lord_Howe', 'Pacific/Auckland', 'Pacific/Chatham',
  'Pacific/Apia', 'Africa/Casablanca', 'America/St_Johns',
];

const FROM = Date.parse('1995-01-01T00:00:00Z');
const TO = Date.parse('2045-12-31T00:00:00Z');

/**
 * Where DST repeats midnight (Havana, Santiago), Luxon's startOf('day') keeps the offset it was
 * called with and may give the second midnight, leaving an hour in no day. A day starts at its
 * first midnight: step back to it.
 */
function firstMidnight(dt: DateTime): DateTime {
  for (const back of [3_600_000, 1_800_000]) {
    const earlier = DateTime.fromMillis(dt.toMillis() - back, { zone: dt.zone });
    if (earlier.toISODate() === dt.toISODate() && earlier.hour === 0 && earlier.minute === 0) return earlier;
  }
  return dt;
}

/** The oracle: Luxon's calendar arithmetic. */
function oracle(period: string, at: number, zone: string, anchor: number): Window {
  const w = luxonWindow(period, at, zone, anchor);
  return { start: firstMidnight(DateTime.fromMillis(w.start, { zone })).toMillis(), end: firstMidnight(DateTime.fromMillis(w.end!, { zone })).toMillis() };
}

function luxonWindow(period: string, at: number, zone: string, anchor: number): Window {
  const local = DateTime.fromMillis(at, { zone });
  switch (period) {
    case 'day':
      return { start: local.startOf('day').toMillis(), end: local.startOf('day').plus({ days: 1 }).startOf('day').toMillis() };
    case 'week':
      return { start: local.startOf('week').toMillis(), end: local.startOf('week').plus({ weeks: 1 }).startOf('week').toMillis() };
    case 'month': {
      const day = DateTime.fromMillis(anchor, { zone }).day;
      const startIn = (d: DateTime) => d.set({ day: Math.min(day, d.daysInMonth!) }).startOf('day');
      let start = startIn(local.startOf('month'));
      if (local < start) start = startIn(local.startOf('month').minus({ months: 1 }));
      return { start: start.toMillis(), end: startIn(start.startOf('month').plus({ months: 1 })).toMillis() };
    }
    case 'annual': {
      const a = DateTime.fromMillis(anchor, { zone });
      const startIn = (year: number) => {
        const m = DateTime.fromObject({ year, month: a.month, day: 1 }, { zone });
        return m.set({ day: Math.min(a.day, m.daysInMonth!) }).startOf('day');
      };
      let start = startIn(local.year);
      if (local < start) start = startIn(local.year - 1);
      return { start: start.toMillis(), end: startIn(start.year + 1).toMillis() };
    }
    default:
      throw new Error(period);
  }
}

const instant = fc.integer({ min: FROM, max: TO });
const zone = fc.constantFrom(...ZONES);

describe('windowFor against Luxon', () => {
  for (const period of ['day', 'week', 'month', 'annual'] as const) {
    test(`${period}: random (timezone, anchor, instant)`, () => {
      fc.assert(
        fc.property(zone, instant, instant, (tz, at, anchor) => {
          const w = windowFor(period, at, { timezone: tz, billingCycleStart: anchor });
          expect(w).toEqual(oracle(period, at, tz, anchor));
          expect(w.start).toBeLessThanOrEqual(at);
          expect(w.end!).toBeGreaterThan(at);
        }),
        { numRuns: 3000 },
      );
    });
  }

  test('instants right around DST transitions (both directions) and midnights', () => {
    // Instants within two hours of a transition, found by scanning each zone's offsets.
    const near: Array<[string, number]> = [];
    for (const tz of ZONES) {
      for (let t = Date.parse('2024-01-01T00:00:00Z'); t < Date.parse('2027-01-01T00:00:00Z'); t += 3_600_000) {
        if (DateTime.fromMillis(t, { zone: tz }).offset !== DateTime.fromMillis(t + 3_600_000, { zone: tz }).offset) near.push([tz, t]);
      }
    }
    expect(near.length).toBeGreaterThan(50);
    fc.assert(
      fc.property(fc.constantFrom(...near), fc.integer({ min: -2 * 3_600_000, max: 2 * 3_600_000 }), instant, ([tz, t], delta, anchor) => {
        for (const period of ['day', 'week', 'month'] as const) {
          expect(windowFor(period, t + delta, { timezone: tz, billingCycleStart: anchor })).toEqual(oracle(period, t + delta, tz, anchor));
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('anchors on the 29th–31st clamp to the last day of shorter months, leap years included', () => {
    const anchorDay = fc.integer({ min: 28, max: 31 });
    fc.assert(
      fc.property(zone, anchorDay, fc.integer({ min: 1996, max: 2040 }), fc.integer({ min: 1, max: 12 }), instant, (tz, day, year, month, at) => {
        const anchor = DateTime.fromObject({ year: 2025, month: 1, day, hour: 15 }, { zone: tz }).toMillis();
        const local = DateTime.fromObject({ year, month, day: 1, hour: 12 }, { zone: tz }).plus({ days: (at % 40) - 5 }).toMillis();
        expect(windowFor('month', local, { timezone: tz, billingCycleStart: anchor })).toEqual(oracle('month', local, tz, anchor));
        const feb29 = DateTime.fromObject({ year: 2024, month: 2, day: 29, hour: 9 }, { zone: tz }).toMillis();
        expect(windowFor('annual', local, { timezone: tz, billingCycleStart: feb29 })).toEqual(oracle('annual', local, tz, feb29));
      }),
      { numRuns: 3000 },
    );
  });

  test('known cases: a 31st anchor gives Feb 28, Feb 29 in a leap year, then the 31st again', () => {
    const ctx = { timezone: 'UTC', billingCycleStart: Date.parse('2026-01-31T08:00:00Z') };
    const iso = (w: Window) => [new Date(w.start).toISOString(), new Date(w.end!).toISOString()];
    expect(iso(windowFor('month', Date.parse('2026-03-01T00:00:00Z'), ctx))).toEqual(['2026-02-28T00:00:00.000Z', '2026-03-31T00:00:00.000Z']);
    expect(iso(windowFor('month', Date.parse('2028-02-29T10:00:00Z'), ctx))).toEqual(['2028-02-29T00:00:00.000Z', '2028-03-31T00:00:00.000Z']);
    expect(iso(windowFor('month', Date.parse('2026-04-15T00:00:00Z'), ctx))).toEqual(['2026-03-31T00:00:00.000Z', '2026-04-30T00:00:00.000Z']);
    // DST: Berlin's 2026-03-29 is 23 hours long, 2026-10-25 is 25.
    const berlin = { timezone: 'Europe/Berlin', billingCycleStart: 0 };
    const spring = windowFor('day', Date.parse('2026-03-29T12:00:00Z'), berlin);
    expect(spring.end! - spring.start).toBe(23 * 3_600_000);
    const autumn = windowFor('day', Date.parse('2026-10-25T12:00:00Z'), berlin);
    expect(autumn.end! - autumn.start).toBe(25 * 3_600_000);
  });

  test('minute and hour are UTC; durations align to the epoch; all_time never ends', () => {
    const ctx = { timezone: 'Asia/Kolkata', billingCycleStart: 0 };
    const at = Date.parse('2026-06-01T10:17:42.123Z');
    expect(windowFor('minute', at, ctx)).toEqual({ start: Date.parse('2026-06-01T10:17:00Z'), end: Date.parse('2026-06-01T10:18:00Z') });
    expect(windowFor('hour', at, ctx)).toEqual({ start: Date.parse('2026-06-01T10:00:00Z'), end: Date.parse('2026-06-01T11:00:00Z') });
    expect(windowFor('30s', at, ctx)).toEqual({ start: Date.parse('2026-06-01T10:17:30Z'), end: Date.parse('2026-06-01T10:18:00Z') });
    expect(windowFor('7d', at, ctx).start % (7 * 86_400_000)).toBe(0);
    fc.assert(
      fc.property(instant, fc.integer({ min: 1, max: 1000 }), fc.constantFrom('s', 'm', 'h', 'd'), (t, n, unit) => {
        const len = n * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit];
        const w = windowFor(`${n}${unit}` as '5m', t, ctx);
        expect(w.start % len).toBe(0);
        expect(w.end! - w.start).toBe(len);
        expect(w.start <= t && t < w.end!).toBe(true);
      }),
    );
    expect(windowFor('all_time', at, ctx)).toEqual({ start: 0, end: null });
  });
});
