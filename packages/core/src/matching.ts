import type { EventQuery, MeterSource, StoredEvent } from './store.js';
import type { Dimensions, Limit, Meter } from './types.js';

/** Where a meter field reads: `'*'` counts the event (1); else one key of its values or dimensions. */
export function fieldSource(field: string): { from: 'count' | 'values' | 'dimensions'; key: string } {
  if (field === '*') return { from: 'count', key: '' };
  return field.startsWith('values.') ? { from: 'values', key: field.slice(7) } : { from: 'dimensions', key: field.slice(11) };
}

/** A meter field of an event: 1 for `'*'`, a number for `values.*`, a string for `dimensions.*`. */
export function fieldOf(field: string, values: Record<string, number>, dimensions: Dimensions): number | string | undefined {
  if (field === '*') return 1;
  if (field.startsWith('values.')) return values[field.slice(7)];
  if (field.startsWith('dimensions.')) return dimensions[field.slice(11)];
  return undefined;
}

/** Every key of `filter` is present in `dimensions` with the same value. */
export function dimensionsMatch(filter: Dimensions | undefined, dimensions: Dimensions): boolean {
  if (!filter) return true;
  for (const k in filter) if (dimensions[k] !== filter[k]) return false;
  return true;
}

/** No key of `filter` that `dimensions` mentions has another value (unmentioned keys pass). */
export function dimensionsNotContradicted(filter: Dimensions | undefined, dimensions: Dimensions | undefined): boolean {
  if (!filter || !dimensions) return true;
  for (const k in filter) {
    const v = dimensions[k];
    if (v !== undefined && v !== filter[k]) return false;
  }
  return true;
}

export function eventMatchesQuery(e: StoredEvent, q: EventQuery): boolean {
  if (q.customerId !== undefined && e.customerId !== q.customerId) return false;
  if (q.eventType !== undefined && e.eventType !== q.eventType) return false;
  if (q.startDate !== undefined && e.timestamp < q.startDate) return false;
  if (q.endDate !== undefined && e.timestamp >= q.endDate) return false;
  return dimensionsMatch(q.dimensions, e.dimensions);
}

/** Whether a recorded event counts towards a meter source (strict: the event has every filtered key). */
export function eventMatchesSource(e: StoredEvent, s: MeterSource): boolean {
  if (s.customerId !== undefined && e.customerId !== s.customerId) return false;
  if (s.startDate !== undefined && e.timestamp < s.startDate) return false;
  if (s.endDate !== undefined && s.endDate !== null && e.timestamp >= s.endDate) return false;
  if (s.eventFilter?.eventType !== undefined && e.eventType !== s.eventFilter.eventType) return false;
  return dimensionsMatch(s.eventFilter?.dimensions, e.dimensions) && dimensionsMatch(s.dimensionFilters, e.dimensions);
}

export interface Target {
  customerId: string;
  eventType?: string;
  dimensions?: Dimensions;
}

/**
 * The limits that apply to an operation, each with its meter. The customer's own limits and the
 * limits without a customer apply. With `strict` (a recorded event) the meter's event filter and
 * the limit's dimension filters must match the event; otherwise (a check or reservation) an
 * event type is compared only when given and a filtered key the caller does not mention passes.
 */
export function applicableLimits(
  limits: readonly Limit[],
  meters: ReadonlyMap<string, Meter>,
  target: Target,
  strict: boolean,
): Array<{ limit: Limit; meter: Meter }> {
  const out: Array<{ limit: Limit; meter: Meter }> = [];
  for (const limit of limits) {
    const meter = meters.get(limit.meterId);
    if (meter && limitApplies(limit, meter, target, strict)) out.push({ limit, meter });
  }
  return out;
}

/** Whether one limit (with its meter) applies to `target`; see {@link applicableLimits}. */
export function limitApplies(limit: Limit, meter: Meter, target: Target, strict: boolean): boolean {
  if (limit.customerId !== undefined && limit.customerId !== target.customerId) return false;
  const filter = meter.eventFilter;
  if (filter === undefined && limit.dimensionFilters === undefined) return true;
  const dims = target.dimensions;
  if (filter?.eventType !== undefined) {
    if (strict ? target.eventType !== filter.eventType : target.eventType !== undefined && target.eventType !== filter.eventType) return false;
  }
  if (strict) {
    const d = dims ?? {};
    return dimensionsMatch(filter?.dimensions, d) && dimensionsMatch(limit.dimensionFilters, d);
  }
  return dimensionsNotContradicted(filter?.dimensions, dims) && dimensionsNotContradicted(limit.dimensionFilters, dims);
}
