/**
 * The store contract. A store plays one or both of two roles:
 *
 * - **Ledger** ({@link LedgerStore}): the durable log of events, and the customers, meters and
 *   limits. It answers lists, summaries, breakdowns, timeseries and meter values by pushing the
 *   aggregation down to the database.
 * - **Counters** ({@link CounterStore}): the hot path. Per (limit, customer, window) usage and
 *   open holds, read and updated for every applicable limit of an operation in one atomic step.
 *
 * The engine decides *which* limits apply and *which* windows they fall in; a store only keeps
 * state and applies {@link CounterOperation}s atomically. The rules an operation follows
 * (how usage is computed, when a slot allows, how a hold counts) are the pure functions in
 * `slots.ts`, which JavaScript stores call directly and a script-based store mirrors.
 *
 * A store declares what it can do in {@link StoreCapabilities}; the engine and the conformance
 * suite (`@tollgate/core/testing`) read the declaration instead of sniffing methods.
 */
import type { Aggregation, Customer, Dimensions, EventFilter, Limit, LimitMode, Meter, Values } from './types.js';

/** Version of this contract. A store built for another version is refused at start-up. */
export const STORE_CONTRACT_VERSION = 1;

export interface StoreCapabilities {
  /** Always {@link STORE_CONTRACT_VERSION}. */
  contract: number;
  /** Implements {@link LedgerStore}. */
  ledger: boolean;
  /** Implements {@link CounterStore}. */
  counters: boolean;
  /** Several processes may share it and see one another's writes at once. */
  shared: boolean;
  /** What it holds survives the process. */
  durable: boolean;
  /**
   * Counters only: the store cannot read a ledger itself, so a slot it has never seen comes back
   * in {@link CounterResult.missing} and the engine seeds it from the ledger (Redis beside SQL).
   */
  needsSeeding?: boolean;
}

interface StoreBase {
  readonly capabilities: StoreCapabilities;
  /** Creates tables or loads scripts; idempotent and safe when several processes start at once. */
  init?(): Promise<void>;
  /** Releases connections the store opened itself (an injected client is left open). */
  close?(): Promise<void>;
}

/**
 * An event as stores keep it: the timestamp is Unix milliseconds. `properties` and
 * `idempotencyKey` may be present with the value undefined: test them against undefined, not `in`.
 */
export interface StoredEvent {
  id: string;
  customerId: string;
  eventType: string;
  values: Values;
  dimensions: Dimensions;
  properties?: Record<string, unknown>;
  timestamp: number;
  idempotencyKey?: string;
}

/** Which events a query covers. Ranges are half-open: `startDate <= timestamp < endDate`. */
export interface EventQuery {
  customerId?: string;
  eventType?: string;
  /** Every given key must equal the event's dimension. */
  dimensions?: Dimensions;
  startDate?: number;
  endDate?: number;
}

/** Keyset position in the newest-first order (timestamp desc, id desc). */
export interface EventCursor {
  timestamp: number;
  id: string;
}

/** Aggregates of one group of events: event count plus the sum of every value key seen. */
export interface ValueTotals {
  totalEvents: number;
  values: Record<string, number>;
}

/** What a meter over one slot needs: its aggregation, field and filters. */
export interface MeterSource {
  aggregation: Aggregation;
  /** `'*'`, `values.<key>` or `dimensions.<key>`. */
  field: string;
  eventFilter?: EventFilter;
  /** The limit's dimension filters, applied like the meter's. */
  dimensionFilters?: Dimensions;
  customerId?: string;
  startDate?: number;
  endDate?: number | null;
}

/** The running aggregate of one slot. Every aggregation is derived from it (see `slots.ts`). */
export interface SlotState {
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  latest: number | null;
  /** Event timestamp of `latest`, so a backdated event does not replace a newer value. */
  latestAt: number | null;
  /** Number of distinct dimension values (`unique` only). */
  distinct: number;
}

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

export interface LedgerStore extends StoreBase {
  /** Inserts when absent. Returns the stored customer and whether this call created it. */
  createCustomer(customer: Customer): Promise<{ created: boolean; customer: Customer }>;
  getCustomer(id: string): Promise<Customer | null>;
  /** Replaces an existing customer; false when there is none. */
  updateCustomer(customer: Customer): Promise<boolean>;
  deleteCustomer(id: string): Promise<boolean>;
  /** Ordered by id; `cursor` is the last id of the previous page. */
  listCustomers(page: { limit: number; cursor?: string }): Promise<Page<Customer>>;

  createMeter(meter: Meter): Promise<{ created: boolean; meter: Meter }>;
  getMeter(id: string): Promise<Meter | null>;
  updateMeter(meter: Meter): Promise<boolean>;
  deleteMeter(id: string): Promise<boolean>;
  listMeters(page: { limit: number; cursor?: string }): Promise<Page<Meter>>;

  createLimit(limit: Limit): Promise<{ created: boolean; limit: Limit }>;
  getLimit(id: string): Promise<Limit | null>;
  updateLimit(limit: Limit): Promise<boolean>;
  deleteLimit(id: string): Promise<boolean>;
  listLimits(page: { limit: number; cursor?: string }): Promise<Page<Limit>>;

  /**
   * Inserts events, all or none. An event whose (customerId, idempotencyKey) was stored before
   * is not stored again: its result is the first event's id with `recorded: false`. The duplicate
   * check and the write are one atomic step.
   */
  insertEvents(events: StoredEvent[]): Promise<Array<{ id: string; recorded: boolean }>>;
  /** Newest first by (timestamp, id); at most `limit` events strictly after `cursor`. */
  listEvents(query: EventQuery, limit: number, cursor?: EventCursor): Promise<StoredEvent[]>;
  summarize(query: EventQuery): Promise<ValueTotals>;
  /** `groupBy` is `customerId`, `eventType` or a dimension key; events without the key group under null. */
  breakdown(query: EventQuery, groupBy: string): Promise<Array<ValueTotals & { dimension: string | null }>>;
  /** Totals per bucket; `boundaries` are ascending, bucket i is [boundaries[i], boundaries[i+1]). */
  timeseries(query: EventQuery, boundaries: number[]): Promise<ValueTotals[]>;
  /** The aggregate of the events a meter source selects; used by meter queries and to seed counters. */
  meterState(source: MeterSource): Promise<SlotState>;
  /**
   * Optional, for seeding a counters-only store (Redis): the slot's state, its distinct values
   * (`unique` only), and the ids of events in it with a timestamp at or after `recentSince`, whose
   * counter updates may still be in flight and must not be counted again. Without it, seeding
   * uses {@link meterState} and cannot seed `unique` slots.
   */
  seedState?(source: MeterSource, recentSince: number): Promise<SeedState>;
}

export interface SeedState {
  state: SlotState;
  distinctValues?: string[];
  recentEventIds: string[];
}

/**
 * One (limit, customer, window) that an operation touches. The engine fills every field; a
 * store keys its state by `key` (or by the fields) and never needs to look at definitions.
 */
export interface CounterSlot {
  /** Unique for (limit revision, customer, window start): `${limitKey}|${customerId}|${windowStart}`. */
  key: string;
  /**
   * `${limitId}@${revision}`: names one limit's counters and changes when the limit or its meter
   * is updated, so the change starts fresh slots rebuilt from the ledger.
   */
  limitKey: string;
  limitId: string;
  customerId: string;
  windowStart: number;
  /** Null for `all_time`; a store may expire the slot's state after it. */
  windowEnd: number | null;
  aggregation: Aggregation;
  limitValue: number;
  mode: LimitMode;
  /**
   * What this operation adds: a number, or for `unique` the dimension value. Null when the event
   * or estimate does not carry the meter's field (the slot is then only read).
   */
  contribution: number | string | null;
  /** Percentages at which an alert fires, ascending; 100 means the limit is reached. */
  thresholds: number[];
  /** How to rebuild this slot from the ledger when the store has no state for it. */
  source: MeterSource;
}

/** Read usage and decide; changes nothing. */
export interface CheckOperation {
  type: 'check';
  now: number;
  slots: CounterSlot[];
}

/** Decide all slots at once; if every hard slot allows, hold each contribution until `expiresAt`. */
export interface ReserveOperation {
  type: 'reserve';
  now: number;
  holdId: string;
  expiresAt: number;
  slots: CounterSlot[];
}

/**
 * One event to count. `holdId`: drop that hold in the same step (a committed reservation);
 * `holdSlots` are the slots the reservation held (which may differ from the event's), where a
 * store finds the hold.
 */
export interface RecordItem {
  event: StoredEvent;
  slots: CounterSlot[];
  holdId?: string;
  holdSlots?: CounterSlot[];
}

/**
 * Count events. When `persist` is true the store is also the ledger: it inserts the events in
 * the same atomic step (all or none), and an event whose idempotency key was seen is neither
 * stored nor counted. When false the events are already in the ledger: the store counts each
 * event id at most once per slot.
 */
export interface RecordOperation {
  type: 'record';
  now: number;
  persist: boolean;
  items: RecordItem[];
}

export interface ReleaseOperation {
  type: 'release';
  now: number;
  holdId: string;
  /** The slots the reservation held. */
  slots: CounterSlot[];
}

/** Seed slots from ledger states (counters-only stores); a slot that has state keeps it. */
export interface SeedOperation {
  type: 'seed';
  now: number;
  seeds: Array<{ slot: CounterSlot } & SeedState>;
}

export type CounterOperation = CheckOperation | ReserveOperation | RecordOperation | ReleaseOperation | SeedOperation;

export interface SlotResult {
  /** Usage after the operation: the aggregate plus open holds. */
  used: number;
  /** Whether this slot lets the operation through (always true for soft slots). */
  allowed: boolean;
}

export interface CounterResult {
  /** Every hard slot allows. For `reserve`, the hold was placed only when true. */
  allowed: boolean;
  /** For check and reserve: one per slot, in order. For record: the slots of all items, in order. */
  slots: SlotResult[];
  /** For record: one per item, in order. */
  records?: Array<{ id: string; recorded: boolean }>;
  /** For record: thresholds crossed for the first time in their window, each reported once ever. */
  alerts?: Array<{ slot: number; threshold: number; used: number }>;
  /**
   * Counters-only stores: indexes (into the operation's slots, flattened over items for a record)
   * with no state. Nothing was changed for them; the engine seeds them from the ledger (marking
   * the record's own events as counted) and applies the operation again. A record may have been
   * applied for other customers' items already: event ids make the second pass count them once.
   */
  missing?: number[];
}

export interface CounterStore extends StoreBase {
  /** Applies one operation atomically against every slot it names. */
  apply(operation: CounterOperation): Promise<CounterResult>;
}

/** A store that plays both roles, as the memory, SQLite and Postgres stores do. */
export type Store = LedgerStore & CounterStore;

export type { Aggregation, Customer, Dimensions, Limit, LimitMode, Meter, Values };
