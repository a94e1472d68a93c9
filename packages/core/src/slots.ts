/**
 * The rules of the counters role, as pure functions over one slot's state. JavaScript stores
 * call them inside their atomic step; the Redis script mirrors them line for line.
 */
import type { Aggregation, CounterSlot, SlotState } from './store.js';

export function emptyState(): SlotState {
  return { count: 0, sum: 0, min: null, max: null, latest: null, latestAt: null, distinct: 0 };
}

/** The meter's value from its running aggregate, without holds. */
export function valueOf(aggregation: Aggregation, state: SlotState): number {
  switch (aggregation) {
    case 'sum': return state.sum;
    case 'count': return state.count;
    case 'max': return state.max ?? 0;
    case 'min': return state.min ?? 0;
    case 'latest': return state.latest ?? 0;
    case 'avg': return state.count === 0 ? 0 : state.sum / state.count;
    case 'unique': return state.distinct;
  }
}

/**
 * What a hold on this slot keeps back: the contribution for sum and count, 1 for a new distinct
 * value (0 for one already counted), the value itself for max and latest. Min and avg hold nothing.
 */
export function holdAmount(slot: CounterSlot, isNewDistinct: boolean): number | null {
  const c = slot.contribution;
  if (c === null) return null;
  switch (slot.aggregation) {
    case 'sum': case 'count': case 'max': case 'latest': return typeof c === 'number' ? c : null;
    case 'unique': return isNewDistinct ? 1 : 0;
    default: return null;
  }
}

/**
 * Usage: the aggregate plus open holds, given as `[holdId, amount]` pairs in any order. Holds add
 * to sum, count and unique; max takes the largest; latest takes the newest reservation's amount,
 * the one with the greatest hold id (reservation ids sort by when they were made), so every store
 * reads the same hold whatever order it keeps them in.
 */
export function usedWith(aggregation: Aggregation, state: SlotState, holds: Iterable<readonly [holdId: string, amount: number]>): number {
  let used = valueOf(aggregation, state);
  switch (aggregation) {
    case 'sum': case 'count': case 'unique':
      for (const h of holds) used += h[1];
      return used;
    case 'max':
      for (const h of holds) if (h[1] > used) used = h[1];
      return used;
    case 'latest': {
      let newest = '';
      for (const h of holds) {
        if (h[0] >= newest) {
          newest = h[0];
          used = h[1];
        }
      }
      return used;
    }
    default:
      return used;
  }
}

/** Usage if this slot's contribution were added now. */
export function projected(slot: CounterSlot, state: SlotState, used: number, isNewDistinct: boolean): number {
  const c = slot.contribution;
  if (c === null) return used;
  if (slot.aggregation === 'unique') return used + (isNewDistinct ? 1 : 0);
  const n = c as number;
  switch (slot.aggregation) {
    case 'sum': case 'count': return used + n;
    case 'max': return Math.max(used, n);
    case 'latest': return n;
    case 'min': return state.min === null ? n : Math.min(state.min, n);
    case 'avg': return (state.sum + n) / (state.count + 1);
    default: return used;
  }
}

/**
 * Whether a slot lets an operation through. Soft slots always do. Without a contribution a hard
 * slot allows while `used < limit`; with one, while the projected usage stays within the limit.
 */
export function slotAllows(slot: CounterSlot, state: SlotState, used: number, isNewDistinct: boolean): boolean {
  if (slot.mode === 'soft') return true;
  if (slot.contribution === null) return used < slot.limitValue;
  return projected(slot, state, used, isNewDistinct) <= slot.limitValue;
}

/** Adds one event's contribution to a running aggregate (mutates `state`). */
export function addToState(state: SlotState, contribution: number | string, at: number, isNewDistinct: boolean): void {
  state.count += 1;
  if (typeof contribution === 'string') {
    if (isNewDistinct) state.distinct += 1;
    return;
  }
  state.sum += contribution;
  if (state.min === null || contribution < state.min) state.min = contribution;
  if (state.max === null || contribution > state.max) state.max = contribution;
  if (state.latestAt === null || at >= state.latestAt) {
    state.latest = contribution;
    state.latestAt = at;
  }
}

const NONE: number[] = [];

/** Thresholds (percent) that `used` has reached, ascending. */
export function reachedThresholds(slot: CounterSlot, used: number): number[] {
  const t = slot.thresholds;
  if (t.length === 0 || used * 100 < t[0] * slot.limitValue - 1e-9) return NONE;
  const out: number[] = [];
  for (const t of slot.thresholds) if (used * 100 >= t * slot.limitValue - 1e-9) out.push(t);
  return out;
}

/**
 * The thresholds to count as fired in a slot rebuilt from the ledger (a window swept away, or a
 * limit or meter updated, which gives its counters a new key): those its usage had reached
 * before the operation that rebuilds it. They were announced already, or were passed when the
 * definition changed; only thresholds crossed from now on alert. For stores that rebuild in the
 * same step as they record (memory, SQL), so no event the rebuild sees is still to be counted.
 */
export function rebuiltFired(slot: CounterSlot, state: SlotState): number[] {
  return reachedThresholds(slot, usedWith(slot.aggregation, state, []));
}
