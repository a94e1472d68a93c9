import { DURATION_PATTERN } from './schemas.js';
import type { Period } from './types.js';

/** A half-open interval [start, end) in Unix milliseconds; `end` is null for `all_time`. */
export interface Window {
  start: number;
  end: number | null;
}

/** What a calendar window depends on besides the instant. */
export interface WindowContext {
  /** IANA timezone for day, week, month and annual windows. */
  timezone: string;
  /** Anchor of month and annual windows, Unix ms: its day (and month) in `timezone` is used. */
  billingCycleStart: number;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const DURATION_UNITS: Record<string, number> = { s: 1000, m: MINUTE, h: HOUR, d: DAY };

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    formatters.set(timezone, f);
  }
  return f;
}

function isUtc(timezone: string): boolean {
  return timezone === 'UTC' || timezone === 'Etc/UTC' || timezone === 'GMT' || timezone === 'Etc/GMT';
}

/** Offset of `timezone` from UTC at instant `ms`, in milliseconds (positive east of Greenwich). */
export function offsetAt(timezone: string, ms: number): number {
  if (isUtc(timezone)) return 0;
  const seconds = Math.floor(ms / 1000) * 1000;
  const parts = formatterFor(timezone).formatToParts(seconds);
  let year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, bc = false;
  for (const p of parts) {
    switch (p.type) {
      case 'year': year = Number(p.value); break;
      case 'month': month = Number(p.value); break;
      case 'day': day = Number(p.value); break;
      case 'hour': hour = Number(p.value); break;
      case 'minute': minute = Number(p.value); break;
      case 'second': second = Number(p.value); break;
      case 'era': bc = p.value === 'BC' || p.value === 'B'; break;
    }
  }
  if (bc) year = 1 - year;
  const asUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  return asUtc - seconds;
}

/** The wall-clock date in `timezone` at instant `ms` (month 1–12; weekday 0 = Monday). */
export function localDate(timezone: string, ms: number): { year: number; month: number; day: number; weekday: number } {
  const d = new Date(ms + offsetAt(timezone, ms));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), weekday: (d.getUTCDay() + 6) % 7 };
}

/**
 * The instant at which the wall clock in `timezone` shows midnight starting the given date.
 * Where DST skips midnight, the day starts at the first instant after the gap.
 */
export function startOfLocalDay(timezone: string, year: number, month: number, day: number): number {
  const local = Date.UTC(year, month - 1, day);
  if (isUtc(timezone)) return local;
  const o1 = offsetAt(timezone, local);
  let utc = local - o1;
  const o2 = offsetAt(timezone, utc);
  if (o1 === o2) return utc;
  utc = local - o2;
  const o3 = offsetAt(timezone, utc);
  if (o2 === o3) return utc;
  return local - Math.min(o2, o3);
}

export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Normalises (year, month) when month runs outside 1–12. */
function addMonths(year: number, month: number, delta: number): { year: number; month: number } {
  const index = year * 12 + (month - 1) + delta;
  return { year: Math.floor(index / 12), month: (index % 12 + 12) % 12 + 1 };
}

function anchoredMonthStart(timezone: string, year: number, month: number, anchorDay: number): number {
  return startOfLocalDay(timezone, year, month, Math.min(anchorDay, daysInMonth(year, month)));
}

/** Parses a duration period such as `'5m'` to milliseconds, or returns null. */
export function durationMs(period: string): number | null {
  const m = DURATION_PATTERN.exec(period);
  return m ? Number(m[1]) * DURATION_UNITS[m[2]] : null;
}

/**
 * The window of `period` containing instant `at`. `minute` and `hour` are UTC; `day` and `week`
 * follow wall-clock midnights in the context's timezone (weeks start Monday); `month` and
 * `annual` start at local midnight of the billing anchor's day, clamped to the month's last day;
 * durations are fixed windows aligned to the Unix epoch; `all_time` never ends.
 */
/**
 * What a period's windows depend on besides the instant: nothing (`utc`: minute, hour, durations,
 * all_time), the timezone (`zone`: day, week), or the timezone and the billing anchor (`anchor`:
 * month, annual). Windows of one scope can be shared by every customer alike in it.
 */
export function windowScope(period: Period): 'utc' | 'zone' | 'anchor' {
  return period === 'month' || period === 'annual' ? 'anchor' : period === 'day' || period === 'week' ? 'zone' : 'utc';
}

export function windowFor(period: Period, at: number, context: WindowContext): Window {
  switch (period) {
    case 'minute': {
      const start = Math.floor(at / MINUTE) * MINUTE;
      return { start, end: start + MINUTE };
    }
    case 'hour': {
      const start = Math.floor(at / HOUR) * HOUR;
      return { start, end: start + HOUR };
    }
    case 'all_time':
      return { start: 0, end: null };
    case 'day': {
      const { year, month, day } = localDate(context.timezone, at);
      return {
        start: startOfLocalDay(context.timezone, year, month, day),
        end: startOfLocalDay(context.timezone, year, month, day + 1),
      };
    }
    case 'week': {
      const { year, month, day, weekday } = localDate(context.timezone, at);
      return {
        start: startOfLocalDay(context.timezone, year, month, day - weekday),
        end: startOfLocalDay(context.timezone, year, month, day - weekday + 7),
      };
    }
    case 'month': {
      const tz = context.timezone;
      const anchorDay = localDate(tz, context.billingCycleStart).day;
      const { year, month } = localDate(tz, at);
      let start = anchoredMonthStart(tz, year, month, anchorDay);
      let from = { year, month };
      if (at < start) {
        from = addMonths(year, month, -1);
        start = anchoredMonthStart(tz, from.year, from.month, anchorDay);
      }
      const next = addMonths(from.year, from.month, 1);
      return { start, end: anchoredMonthStart(tz, next.year, next.month, anchorDay) };
    }
    case 'annual': {
      const tz = context.timezone;
      const anchor = localDate(tz, context.billingCycleStart);
      const { year } = localDate(tz, at);
      let startYear = year;
      let start = anchoredMonthStart(tz, year, anchor.month, anchor.day);
      if (at < start) {
        startYear = year - 1;
        start = anchoredMonthStart(tz, startYear, anchor.month, anchor.day);
      }
      return { start, end: anchoredMonthStart(tz, startYear + 1, anchor.month, anchor.day) };
    }
    default: {
      const length = durationMs(period);
      if (length === null) throw new TypeError(`Unknown period ${period}`);
      const start = Math.floor(at / length) * length;
      return { start, end: start + length };
    }
  }
}
