/**
 * The counters role for SQL stores. A SQL store loads the state of every slot an operation
 * names inside one transaction, hands it to {@link planOperation}, which applies the rules of
 * `slots.ts` exactly as the memory store does, and writes back the {@link CounterWrites}. Keeping
 * the decision in JavaScript means SQLite, Postgres and memory cannot drift apart.
 */
import { addToState, holdAmount, reachedThresholds, slotAllows, usedWith } from '../slots.js';
import { assertStorable } from './common.js';
import type { CounterOperation, CounterResult, CounterSlot, SlotState, StoredEvent } from '../store.js';

/** One slot's state as read inside the transaction. */
export interface LoadedSlot {
  state: SlotState;
  /** Unexpired holds, hold id → amount. */
  holds: Map<string, number>;
  /** Thresholds already alerted in this window. */
  fired: Set<number>;
  /** Which of the operation's `unique` contributions the slot has already counted. */
  values: Set<string>;
  /** Which of the operation's event ids the slot has already counted (`persist: false` only). */
  applied: Set<string>;
}

/** What the transaction must write after {@link planOperation}. */
export interface CounterWrites {
  /** Slots whose aggregate changed, with the new state. */
  counters: Map<string, { slot: CounterSlot; state: SlotState }>;
  holds: Array<{ holdId: string; key: string; amount: number; expiresAt: number }>;
  droppedHolds: string[];
  values: Array<{ key: string; value: string }>;
  alerts: Array<{ key: string; threshold: number }>;
  applied: Array<{ key: string; eventId: string }>;
  /** Events to insert (`record` with `persist`): the ones whose idempotency key was not seen. */
  events: StoredEvent[];
}

/** Every distinct slot an operation names, first occurrence first. */
export function slotsOf(op: CounterOperation): CounterSlot[] {
  const seen = new Map<string, CounterSlot>();
  const add = (slot: CounterSlot) => { if (!seen.has(slot.key)) seen.set(slot.key, slot); };
  if (op.type === 'check' || op.type === 'reserve') op.slots.forEach(add);
  else if (op.type === 'record') for (const item of op.items) item.slots.forEach(add);
  else if (op.type === 'seed') for (const s of op.seeds) add(s.slot);
  return [...seen.values()];
}

/** (slot key, value) pairs whose membership in a `unique` slot the operation needs to know. */
export function valueProbes(op: CounterOperation): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  const visit = (slot: CounterSlot) => {
    if (slot.aggregation === 'unique' && typeof slot.contribution === 'string') out.push({ key: slot.key, value: slot.contribution });
  };
  if (op.type === 'check' || op.type === 'reserve') op.slots.forEach(visit);
  else if (op.type === 'record') for (const item of op.items) item.slots.forEach(visit);
  return out;
}

/** (slot key, event id) pairs to look up when events come from another ledger. */
export function appliedProbes(op: CounterOperation): Array<{ key: string; eventId: string }> {
  if (op.type !== 'record' || op.persist) return [];
  return op.items.flatMap((item) => item.slots.map((slot) => ({ key: slot.key, eventId: item.event.id })));
}

/** Idempotency keys of the events a persisting `record` would insert. */
export function idempotencyProbes(events: StoredEvent[]): Array<{ customerId: string; key: string }> {
  const out: Array<{ customerId: string; key: string }> = [];
  for (const e of events) if (e.idempotencyKey !== undefined) out.push({ customerId: e.customerId, key: e.idempotencyKey });
  return out;
}

export const idempotencyId = (customerId: string, key: string) => `${customerId}\u0000${key}`;

/**
 * An event's record as `insertEvents` answers it: new, or the id first stored under its
 * idempotency key. `idempotency` maps {@link idempotencyId} to those ids and learns the new key,
 * so a key repeated within one batch is counted once too.
 */
export function recordOf(e: StoredEvent, idempotency: Map<string, string>): { id: string; recorded: boolean } {
  if (e.idempotencyKey === undefined) return { id: e.id, recorded: true };
  const key = idempotencyId(e.customerId, e.idempotencyKey);
  const first = idempotency.get(key);
  if (first !== undefined) return { id: first, recorded: false };
  idempotency.set(key, e.id);
  return { id: e.id, recorded: true };
}

/** The records of a batch and the events in it to insert (the ones whose key was not seen). */
export function freshEvents(events: StoredEvent[], idempotency: Map<string, string>): { records: Array<{ id: string; recorded: boolean }>; fresh: StoredEvent[] } {
  const fresh: StoredEvent[] = [];
  const records = events.map((e) => {
    const record = recordOf(e, idempotency);
    if (record.recorded) fresh.push(e);
    return record;
  });
  return { records, fresh };
}

/**
 * Customers whose counters or idempotency keys an operation touches, sorted (the lock order).
 * An event with neither needs no lock: inserting it cannot race with anything.
 */
export function customersOf(op: CounterOperation): string[] {
  const ids = new Set<string>();
  for (const slot of slotsOf(op)) ids.add(slot.customerId);
  if (op.type === 'record' && op.persist) for (const item of op.items) if (item.event.idempotencyKey !== undefined) ids.add(item.event.customerId);
  return [...ids].sort();
}

function isNewDistinct(slot: CounterSlot, s: LoadedSlot): boolean {
  return slot.aggregation === 'unique' && typeof slot.contribution === 'string' && !s.values.has(slot.contribution);
}

function usedOf(slot: CounterSlot, s: LoadedSlot): number {
  return usedWith(slot.aggregation, s.state, s.holds);
}

/**
 * Applies one operation to loaded slot states, mirroring the memory store step for step, and
 * returns the answer plus what to write. `idempotency` maps {@link idempotencyId} to the id of
 * the event that first used the key; it is updated as the operation's own events claim keys.
 * `check` and `release` need no writes; `seed` is handled by the store.
 */
export function planOperation(
  op: CounterOperation,
  slots: Map<string, LoadedSlot>,
  idempotency: Map<string, string> = new Map(),
): { result: CounterResult; writes: CounterWrites } {
  const writes: CounterWrites = { counters: new Map(), holds: [], droppedHolds: [], values: [], alerts: [], applied: [], events: [] };
  const slotOf = (key: string) => {
    const s = slots.get(key);
    if (!s) throw new Error(`slot ${key} was not loaded`);
    return s;
  };
  switch (op.type) {
    case 'check':
    case 'reserve': {
      const results = op.slots.map((slot) => {
        const s = slotOf(slot.key);
        const used = usedOf(slot, s);
        return { used, allowed: slotAllows(slot, s.state, used, isNewDistinct(slot, s)) };
      });
      const allowed = results.every((r) => r.allowed);
      if (op.type === 'reserve' && allowed) {
        op.slots.forEach((slot, i) => {
          const s = slotOf(slot.key);
          const amount = holdAmount(slot, isNewDistinct(slot, s));
          if (amount === null) return;
          s.holds.set(op.holdId, amount);
          writes.holds.push({ holdId: op.holdId, key: slot.key, amount, expiresAt: op.expiresAt });
          results[i].used = usedOf(slot, s);
        });
      }
      return { result: { allowed, slots: results }, writes };
    }
    case 'record': {
      const records: Array<{ id: string; recorded: boolean }> = [];
      const results: CounterResult['slots'] = [];
      const alerts: NonNullable<CounterResult['alerts']> = [];
      for (const item of op.items) {
        if (item.holdId !== undefined) {
          for (const s of slots.values()) s.holds.delete(item.holdId);
          writes.droppedHolds.push(item.holdId);
        }
        const record = op.persist ? recordOf(item.event, idempotency) : { id: item.event.id, recorded: true };
        if (op.persist && record.recorded) writes.events.push(item.event);
        records.push(record);
        for (const slot of item.slots) {
          const s = slotOf(slot.key);
          let counts = record.recorded && slot.contribution !== null;
          if (counts && !op.persist) {
            if (s.applied.has(item.event.id)) counts = false;
            else {
              s.applied.add(item.event.id);
              writes.applied.push({ key: slot.key, eventId: item.event.id });
            }
          }
          if (counts) {
            const isNew = isNewDistinct(slot, s);
            if (isNew) {
              s.values.add(slot.contribution as string);
              writes.values.push({ key: slot.key, value: slot.contribution as string });
            }
            addToState(s.state, slot.contribution!, item.event.timestamp, isNew);
            writes.counters.set(slot.key, { slot, state: s.state });
          }
          const used = usedOf(slot, s);
          results.push({ used, allowed: true });
          if (!counts) continue;
          for (const threshold of reachedThresholds(slot, used)) {
            if (s.fired.has(threshold)) continue;
            s.fired.add(threshold);
            writes.alerts.push({ key: slot.key, threshold });
            alerts.push({ slot: results.length - 1, threshold, used });
          }
        }
      }
      return { result: { allowed: true, slots: results, records, alerts }, writes };
    }
    case 'release':
      writes.droppedHolds.push(op.holdId);
      return { result: { allowed: true, slots: [] }, writes };
    case 'seed':
      return { result: { allowed: true, slots: [] }, writes };
  }
}

/** Rejects slots naming a customer or a `unique` value the database would store altered. */
export function assertStorableSlots(op: CounterOperation, allowNul: boolean): void {
  for (const slot of slotsOf(op)) assertStorable({ customerId: slot.customerId, key: slot.key }, 'counter slot', allowNul);
  for (const { value } of valueProbes(op)) assertStorable({ dimension: value }, 'counter slot', allowNul);
}
