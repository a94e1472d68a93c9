import { CounterCatchUp } from './catch-up.js';
import { TollgateError, alreadyExists, notFound } from './errors.js';
import { retryAfterSeconds } from './http.js';
import { Deadlines } from './deadlines.js';
import { parseBatchIngest, parseCheck, parseCommit, parseRecordEvent, parseReserve, type ParsedCheck, type ParsedEvent } from './fast-parse.js';
import { IMMEDIATE, promised, type Immediate } from './immediate.js';
import { newId } from './ids.js';
import { fieldSource, limitApplies, type Target } from './matching.js';
import { applyNowOf, memoryStore } from './memory-store.js';
import {
  breakdownSchema,
  createCustomerSchema,
  createLimitSchema,
  createMeterSchema,
  idSchema,
  listEventsSchema,
  listSchema,
  meterQuerySchema,
  parse,
  summarySchema,
  timeseriesSchema,
  tollgateOptionsSchema,
  updateCustomerSchema,
  updateLimitSchema,
  updateMeterSchema,
  type BatchIngestInput,
  type BreakdownInput,
  type CheckInput,
  type CommitInput,
  type CreateCustomerInput,
  type CreateLimitInput,
  type CreateMeterInput,
  type ListEventsInput,
  type ListInput,
  type MeterQueryInput,
  type RecordEventInput,
  type ReserveInput,
  type SummaryInput,
  type TimeseriesInput,
  type UpdateCustomerInput,
  type UpdateLimitInput,
  type UpdateMeterInput,
} from './schemas.js';
import { valueOf } from './slots.js';
import {
  STORE_CONTRACT_VERSION,
  type CounterOperation,
  type CounterResult,
  type CounterSlot,
  type CounterStore,
  type EventQuery,
  type LedgerStore,
  type MeterSource,
  type RecordItem,
  type RecordOperation,
  type ReleaseOperation,
  type StoredEvent,
} from './store.js';
import type {
  AlertEvent,
  BreakdownRow,
  CheckResult,
  Customer,
  DecisionReason,
  Dimensions,
  Event,
  Limit,
  LimitStatus,
  Meter,
  Page,
  RecordResult,
  Summary,
  TimeseriesPoint,
  Values,
} from './types.js';
import { startOfLocalDay, windowFor, windowScope, type Window, type WindowContext } from './windows.js';

export interface TollgateOptions {
  /**
   * Where events, customers, meters and limits live; it also keeps the counters unless
   * `counters` is given. Default: {@link memoryStore} (this process only, nothing kept).
   * @example createTollgate({ store: postgresStore({ connectionString: process.env.DATABASE_URL }) })
   */
  store?: LedgerStore & Partial<CounterStore>;
  /**
   * A separate counters store for the hot path, e.g. Redis beside a Postgres ledger.
   * Default: the `store` itself.
   */
  counters?: CounterStore;
  /** Meters declared in code: created or updated when Tollgate starts. */
  meters?: CreateMeterInput[];
  /** Limits declared in code: created or updated when Tollgate starts. */
  limits?: CreateLimitInput[];
  /** IANA timezone of day/week/month windows for customers without their own. Default `'UTC'`. */
  timezone?: string;
  /**
   * Called once per (limit, customer, window, threshold) when usage reaches one of a limit's
   * `alertThresholds` (`limit.threshold_reached`) or the limit itself (`limit.exceeded`).
   * Errors it throws are swallowed so they never fail a record.
   */
  onAlert?: (alert: AlertEvent) => void | Promise<void>;
  /**
   * What a check or reservation answers when the counters store fails or times out:
   * `'open'` allows (availability first), `'closed'` denies (cost control first). The answer's
   * `reason` says which happened. Default `'open'`.
   */
  onStoreError?: 'open' | 'closed';
  /**
   * How long a check or reservation waits for a shared counters store before `onStoreError`
   * decides. Default 1000 ms for shared stores (SQL, Redis); the memory store is never timed out.
   */
  storeTimeoutMs?: number;
  /** How long a reservation holds its estimate when neither committed nor released. Default 10 minutes. */
  defaultTtlMs?: number;
  /**
   * How long meter and limit definitions and customers are cached before being re-read from a
   * shared store, i.e. how soon a change made by another process is seen. Changes made through
   * this instance take effect at once. Default 1000 ms; ignored for the memory store.
   */
  cacheTtlMs?: number;
  /** Clock, for tests and simulations. Default `Date.now`. */
  now?: () => number | Date;
}

/** A held estimate from {@link Tollgate.reserve}. Commit it with the real usage, or release it. */
export interface Reservation {
  id: string;
  allowed: boolean;
  reason: DecisionReason;
  limits: LimitStatus[];
  /** When the hold lapses if nobody commits or releases it (ISO). */
  expiresAt: string;
  /** Seconds until the earliest blocking window resets when denied; null otherwise or for all_time. */
  retryAfter: number | null;
  /**
   * Records the real event (values default to the estimate) and drops the hold. Idempotent:
   * the reservation id is the event's idempotency key. Throws `limit_exceeded` on a denied reservation.
   */
  commit(input?: CommitInput): Promise<RecordResult>;
  /** Drops the hold without recording anything. */
  release(): Promise<void>;
}

export interface Tollgate {
  events: {
    record(input: RecordEventInput): Promise<RecordResult>;
    batchIngest(input: BatchIngestInput): Promise<{ count: number }>;
    list(input?: ListEventsInput): Promise<Page<Event>>;
    getSummary(input?: SummaryInput): Promise<Summary>;
    getBreakdown(input: BreakdownInput): Promise<{ data: BreakdownRow[] }>;
    getTimeseries(input: TimeseriesInput): Promise<{ data: TimeseriesPoint[] }>;
  };
  meters: {
    create(input: CreateMeterInput): Promise<Meter>;
    retrieve(id: string): Promise<Meter>;
    update(id: string, input: UpdateMeterInput): Promise<Meter>;
    delete(id: string): Promise<{ id: string; deleted: true }>;
    list(input?: ListInput): Promise<Page<Meter>>;
    query(id: string, input?: MeterQueryInput): Promise<{ meterId: string; aggregation: Meter['aggregation']; value: number; count: number }>;
  };
  limits: {
    create(input: CreateLimitInput): Promise<Limit>;
    retrieve(id: string): Promise<Limit>;
    update(id: string, input: UpdateLimitInput): Promise<Limit>;
    delete(id: string): Promise<{ id: string; deleted: true }>;
    list(input?: ListInput): Promise<Page<Limit>>;
    /** May this customer do this now? Never changes state. */
    check(input: CheckInput): Promise<CheckResult>;
  };
  customers: {
    create(input: CreateCustomerInput): Promise<Customer>;
    retrieve(id: string): Promise<Customer>;
    update(id: string, input: UpdateCustomerInput): Promise<Customer>;
    delete(id: string): Promise<{ id: string; deleted: true }>;
    list(input?: ListInput): Promise<Page<Customer>>;
  };
  /** Decides every applicable limit at once and, if allowed, holds the estimate. */
  reserve(input: ReserveInput): Promise<Reservation>;
  /** Resolves once stores are initialised and declared definitions are in place. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_TTL_MS = 10 * 60_000;
/** The values or dimensions of an event that has none: one shared, frozen object, as events are kept. */
const NONE = Object.freeze({});
/** Events this recent may have counter updates in flight while a counters-only store is seeded. */
const RECENT_EVENTS_MS = 15 * 60_000;
const MAX_BUCKETS = 10_000;
const CUSTOMER_CACHE_MAX = 100_000;

/** A limit with what deciding it needs, worked out once per definitions load. */
interface LimitEntry {
  limit: Limit;
  meter: Meter;
  /** `${limitId}@${revision}`; the revision changes when what its counters count changes. */
  limitKey: string;
  /** Alert thresholds plus 100, ascending. */
  thresholds: number[];
  /** Where the meter's field is read (see {@link fieldSource}). */
  field: ReturnType<typeof fieldSource>;
  /** The window this limit was last decided in, and the cache it came from (see {@link Engine.windowOf}). */
  window: CachedWindow | null;
  windowFrom: WindowCache | null;
}

interface Definitions {
  meters: Map<string, Meter>;
  limits: Limit[];
  /** The limits whose meter exists. */
  entries: LimitEntry[];
  loadedAt: number;
}

interface CachedWindow extends Window {
  startIso: string;
  endIso: string | null;
  reset: number | null;
}

/** The current window of each period (valid while `at` is inside), by period. */
type WindowCache = Map<string, CachedWindow>;

/**
 * A customer's window context, as the engine caches it. Only month and annual windows depend on
 * the customer's own billing anchor; day and week windows are shared by every customer in one
 * timezone, the UTC periods by everyone, so a decision reads mostly windows that are in cache.
 */
interface CustomerContext extends WindowContext {
  /** The customer's own month and annual windows. */
  windows: WindowCache;
  /** Day and week windows of the customer's timezone, shared with every customer in it. */
  zoneWindows: WindowCache;
  /** When this context was loaded (the cache entry's age). */
  at: number;
  /** Whether the customer exists in the ledger (unknown customers are cached too). */
  known: boolean;
}

/** A check's or reservation's answer: a fresh literal, not the store's result with a field added (a shape change per call). */
type Decided = { allowed: boolean; slots: CounterResult['slots']; reason: DecisionReason };

type Records = Array<{ id: string; recorded: boolean }>;

interface Prepared {
  defs: Definitions;
  context: CustomerContext;
}

/**
 * A counter slot as the engine builds it: the contract's fields plus the limit, meter and window
 * it stands for (which the statuses are made from). `key` and `source` are built only when a
 * store reads them: the memory store needs `source` only for a slot it has never seen.
 */
class LimitSlot implements CounterSlot {
  constructor(
    readonly entry: LimitEntry,
    readonly window: CachedWindow,
    readonly customerId: string,
    readonly contribution: number | string | null,
  ) {}

  // The contract's remaining fields are read through: a slot is made per limit per call, so fewer own fields means less garbage.
  get limit(): Limit { return this.entry.limit; }
  get meter(): Meter { return this.entry.meter; }
  get limitKey(): string { return this.entry.limitKey; }
  get thresholds(): number[] { return this.entry.thresholds; }
  get limitId(): string { return this.entry.limit.id; }
  get aggregation(): Meter['aggregation'] { return this.meter.aggregation; }
  get limitValue(): number { return this.limit.limitValue; }
  get mode(): Limit['mode'] { return this.limit.mode; }
  get windowStart(): number { return this.window.start; }
  get windowEnd(): number | null { return this.window.end; }

  private keyText: string | undefined;

  get key(): string {
    return (this.keyText ??= `${this.limitKey}|${this.customerId}|${this.windowStart}`);
  }

  get source(): MeterSource {
    return {
      aggregation: this.meter.aggregation,
      field: this.meter.field,
      eventFilter: this.meter.eventFilter,
      dimensionFilters: this.limit.dimensionFilters,
      customerId: this.customerId,
      startDate: this.window.start,
      endDate: this.window.end,
    };
  }
}

/** Whether `at` falls in window `w`. */
function contains(w: Window, at: number): boolean {
  return at >= w.start && (w.end === null || at < w.end);
}

let lastIsoMs = Number.NaN;
let lastIso = '';
/** ISO string of Unix ms; remembers the last one, as calls in one millisecond repeat it. */
function iso(ms: number): string {
  if (ms !== lastIsoMs) {
    lastIso = new Date(ms).toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}

function storeFailure(error: unknown, what: string): TollgateError {
  if (TollgateError.isInstance(error)) return error;
  return new TollgateError('store_unavailable', `The store failed while ${what}: ${(error as Error)?.message ?? error}. Check that the database is reachable; nothing was changed if the call did not return.`, { cause: error });
}

function toEvent(e: StoredEvent): Event {
  const out: Event = {
    id: e.id,
    customerId: e.customerId,
    eventType: e.eventType,
    values: e.values,
    dimensions: e.dimensions,
    timestamp: iso(e.timestamp),
  };
  if (e.properties !== undefined) out.properties = e.properties;
  if (e.idempotencyKey !== undefined) out.idempotencyKey = e.idempotencyKey;
  return out;
}

function encodeCursor(e: StoredEvent): string {
  return Buffer.from(JSON.stringify([e.timestamp, e.id])).toString('base64url');
}

function decodeCursor(cursor: string): { timestamp: number; id: string } {
  try {
    const [timestamp, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof timestamp === 'number' && typeof id === 'string') return { timestamp, id };
  } catch {
    // fall through
  }
  throw new TollgateError('invalid_request', 'Invalid cursor: pass the nextCursor of a previous page unchanged.', {
    issues: [{ path: 'cursor', message: 'not a cursor returned by events.list' }],
  });
}

/**
 * Creates a Tollgate engine. Every method validates its input first and rejects bad input with
 * a `TollgateError` of code `invalid_request` before anything changes.
 *
 * @example
 * const tollgate = createTollgate({
 *   meters: [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }],
 *   limits: [{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 100_000, period: 'day' }],
 * });
 */
export function createTollgate(options: TollgateOptions = {}): Tollgate {
  return new Engine(options).api;
}

class Engine {
  private readonly ledger: LedgerStore;
  private readonly counters: CounterStore;
  private readonly combined: boolean;
  private readonly timezone: string;
  private readonly clock: () => number;
  private readonly policy: 'open' | 'closed';
  /** The counters store's synchronous apply (the memory store as it is), else null. */
  private readonly applyNow: ((op: CounterOperation) => CounterResult) | null;
  /** Times out calls to a shared counters store; null when they are never timed out. */
  private readonly deadlines: Deadlines | null;
  private readonly cacheTtlMs: number;
  private readonly holdTtlMs: number;
  private readonly declaredMeters: CreateMeterInput[];
  private readonly declaredLimits: CreateLimitInput[];
  private defs: Definitions | null = null;
  private readonly customers = new Map<string, CustomerContext>();
  /** Windows of the UTC periods (minute, hour, durations, all_time), the same for every customer. */
  private readonly utcWindows: WindowCache = new Map();
  /** Day and week windows, by timezone. */
  private readonly zoneWindows = new Map<string, WindowCache>();
  private initialized = false;
  private anonymous: CustomerContext | null = null;
  /** The load of the definitions in flight, if any. */
  private loadingDefinitions: Promise<Definitions> | null = null;
  /** The latest start-up attempt; see {@link whenReady}. */
  private initializing: Promise<void>;
  /** The latest start-up attempt failed: the next call that needs it starts another. */
  private initFailed = false;
  /** Counter updates that failed after their events reached the ledger, applied again until they land. */
  private readonly catchUp: CounterCatchUp;

  constructor(private readonly options: TollgateOptions) {
    parse(tollgateOptionsSchema, options, 'createTollgate options');
    const store = options.store ?? memoryStore();
    this.ledger = store;
    const counters = options.counters ?? (store as CounterStore);
    if (!store.capabilities?.ledger) {
      throw new TollgateError('invalid_request', 'options.store must be a ledger store such as memoryStore(), sqliteStore() or postgresStore().', {
        issues: [{ path: 'store', message: 'not a ledger store' }],
      });
    }
    if (!counters.capabilities?.counters || typeof counters.apply !== 'function') {
      throw new TollgateError('invalid_request', 'No counters store: pass a store that keeps counters, or options.counters such as redisCounters().', {
        issues: [{ path: 'counters', message: 'not a counters store' }],
      });
    }
    for (const [path, s] of [['store', store], ['counters', counters]] as const) {
      if (s.capabilities.contract !== STORE_CONTRACT_VERSION) {
        throw new TollgateError('invalid_request', `options.${path} implements store contract ${s.capabilities.contract}; this @tollgate/core needs ${STORE_CONTRACT_VERSION}. Upgrade the store package.`, {
          issues: [{ path, message: 'store contract version mismatch' }],
        });
      }
    }
    this.counters = counters;
    this.combined = (counters as unknown) === (store as unknown);
    this.timezone = options.timezone ?? 'UTC';
    const now = options.now;
    this.clock = now ? () => { const v = now(); return typeof v === 'number' ? v : v.getTime(); } : Date.now;
    this.policy = options.onStoreError ?? 'open';
    const timeoutMs = options.storeTimeoutMs ?? (counters.capabilities.shared ? 1000 : undefined);
    this.deadlines = timeoutMs === undefined ? null : new Deadlines(timeoutMs);
    this.applyNow = timeoutMs === undefined ? applyNowOf(counters) : null;
    this.cacheTtlMs = options.cacheTtlMs ?? (store.capabilities.shared ? 1000 : Infinity);
    this.holdTtlMs = options.defaultTtlMs ?? DEFAULT_TTL_MS;
    this.declaredMeters = (options.meters ?? []).map((m, i) => parse(createMeterSchema, m, `options.meters[${i}]`));
    this.declaredLimits = (options.limits ?? []).map((l, i) => parse(createLimitSchema, l, `options.limits[${i}]`));
    this.catchUp = new CounterCatchUp((op) => this.timed(this.applyCounters(op)), (op, result) => this.emitAlerts(op.items, result, this.clock()), this.clock);
    this.initializing = this.startInit();
    const immediate: Immediate = { check: (input) => this.checkNow(input), record: (input) => this.recordNow(input) };
    Object.defineProperty(this.api, IMMEDIATE, { value: immediate });
  }

  // ── start-up and caches ──────────────────────────────────────────────────

  private startInit(): Promise<void> {
    const attempt = this.init();
    attempt.catch(() => {
      if (this.initializing === attempt) this.initFailed = true;
    });
    return attempt;
  }

  /**
   * Start-up (opening the stores, creating declared meters and limits), tried again when the last
   * attempt failed: a database that is down while the service starts is not fatal, and calls
   * succeed once it is back. Concurrent callers share one attempt.
   */
  private whenReady(): Promise<void> {
    if (this.initFailed) {
      this.initFailed = false;
      this.initializing = this.startInit();
    }
    return this.initializing;
  }

  private async init(): Promise<void> {
    await this.ledger.init?.();
    if (!this.combined) await this.counters.init?.();
    const at = iso(this.clock());
    for (const input of this.declaredMeters) {
      const meter: Meter = { ...input, createdAt: at, updatedAt: at };
      const { created, meter: existing } = await this.ledger.createMeter(meter);
      if (!created && !sameDefinition(existing, meter)) await this.ledger.updateMeter({ ...meter, createdAt: existing.createdAt });
    }
    for (const input of this.declaredLimits) {
      const limit: Limit = { ...input, mode: input.mode ?? 'hard', createdAt: at, updatedAt: at };
      if (!(await this.ledger.getMeter(limit.meterId))) throw notFound('meter', limit.meterId);
      const { created, limit: existing } = await this.ledger.createLimit(limit);
      if (!created && !sameDefinition(existing, limit)) await this.ledger.updateLimit({ ...limit, createdAt: existing.createdAt });
    }
    this.initialized = true;
  }

  private async loadDefinitions(): Promise<Definitions> {
    const meters = new Map<string, Meter>();
    for (const m of await this.listAll((p) => this.ledger.listMeters(p))) meters.set(m.id, m);
    const limits = await this.listAll((p) => this.ledger.listLimits(p));
    const entries: LimitEntry[] = [];
    for (const limit of limits) {
      const meter = meters.get(limit.meterId);
      if (!meter) continue;
      entries.push({
        limit,
        meter,
        limitKey: limitKeyOf(limit, meter),
        thresholds: [...new Set([...(limit.alertThresholds ?? []), 100])].sort((a, b) => a - b),
        field: fieldSource(meter.field),
        window: null,
        windowFrom: null,
      });
    }
    this.defs = { meters, limits, entries, loadedAt: this.clock() };
    return this.defs;
  }

  private async listAll<T extends { id: string }>(list: (page: { limit: number; cursor?: string }) => Promise<{ data: T[]; nextCursor: string | null }>): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    do {
      const page = await list({ limit: 1000, cursor });
      out.push(...page.data);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    return out;
  }

  /** The meters and limits, cached; `now` is the caller's clock reading (one per operation: reading the clock is not free). */
  private definitions(now: number): Definitions | Promise<Definitions> {
    const d = this.defs;
    if (d && now - d.loadedAt < this.cacheTtlMs) return d;
    // Callers that come while the definitions load wait for the same load: a slow ledger gets one
    // query, not one per request.
    return (this.loadingDefinitions ??= this.loadDefinitions()
      .catch((e) => { throw storeFailure(e, 'loading meters and limits'); })
      .finally(() => { this.loadingDefinitions = null; }));
  }

  /**
   * The window context of a customer; with `create`, an unknown customer is created first.
   * A customer not (yet) known is cached too, so checks for it cost no ledger read either.
   */
  private customerContext(customerId: string, create: boolean, at: number): CustomerContext | Promise<CustomerContext> {
    const cached = this.customers.get(customerId);
    if (cached && at - cached.at < this.cacheTtlMs && (cached.known || !create)) return cached;
    return this.loadCustomer(customerId, create, at);
  }

  private async loadCustomer(customerId: string, create: boolean, at: number): Promise<CustomerContext> {
    let customer = await this.ledger.getCustomer(customerId);
    if (!customer && create) {
      const stamp = iso(at);
      customer = (await this.ledger.createCustomer({ id: customerId, billingCycleStart: stamp, metadata: {}, createdAt: stamp, updatedAt: stamp })).customer;
    }
    const timezone = customer?.timezone ?? this.timezone;
    const context = this.contextFor(timezone, customer ? Date.parse(customer.billingCycleStart) : at, at, customer !== null);
    if (this.customers.size >= CUSTOMER_CACHE_MAX) this.customers.clear();
    this.customers.set(customerId, context);
    return context;
  }

  private contextFor(timezone: string, billingCycleStart: number, at: number, known: boolean): CustomerContext {
    let zoneWindows = this.zoneWindows.get(timezone);
    if (zoneWindows === undefined) this.zoneWindows.set(timezone, (zoneWindows = new Map()));
    return { timezone, billingCycleStart, windows: new Map(), zoneWindows, at, known };
  }

  /**
   * The window of `entry`'s limit containing `at`. The last one is kept on the entry too, with the
   * cache it came from (the customer's, the timezone's or the UTC one): when the next decision
   * reads the same cache, as every decision on UTC and same-timezone limits does, the window
   * needs no map lookup.
   */
  private windowOf(entry: LimitEntry, at: number, context: CustomerContext): CachedWindow {
    const period = entry.limit.period;
    const scope = windowScope(period);
    const windows = scope === 'anchor' ? context.windows : scope === 'zone' ? context.zoneWindows : this.utcWindows;
    const last = entry.window;
    if (last !== null && entry.windowFrom === windows && contains(last, at)) return last;
    const cached = windows.get(period);
    if (cached !== undefined && contains(cached, at)) {
      entry.window = cached;
      entry.windowFrom = windows;
      return cached;
    }
    const w = windowFor(period, at, context);
    const created: CachedWindow = { start: w.start, end: w.end, startIso: iso(w.start), endIso: w.end === null ? null : iso(w.end), reset: w.end === null ? null : Math.ceil(w.end / 1000) };
    // Only the current window is worth keeping; backdated events compute theirs.
    if (!cached || w.start > cached.start) {
      windows.set(period, created);
      entry.window = created;
      entry.windowFrom = windows;
    }
    return created;
  }

  private async ensureReady(): Promise<void> {
    if (!this.initialized) await this.whenReady();
  }

  // ── slots and decisions ──────────────────────────────────────────────────

  /**
   * The slots of every limit that applies to `target`, in the windows containing `at`. Each slot's
   * contribution comes from `values` (an estimate or an event's values; none when undefined): 1 for
   * a count meter, else the meter's field.
   */
  private slotsFor(defs: Definitions, target: Target, strict: boolean, at: number, context: CustomerContext, values: Values | undefined): LimitSlot[] {
    // Sized for every limit and cut to those that apply: pushing onto an empty array grows it on the slow path.
    const entries = defs.entries;
    const slots: LimitSlot[] = new Array(entries.length);
    let n = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      const { limit, meter, field } = entry;
      if (!limitApplies(limit, meter, target, strict)) continue;
      const contribution = values === undefined ? null : field.from === 'count' ? 1 : (field.from === 'values' ? values[field.key] : target.dimensions?.[field.key]) ?? null;
      slots[n++] = new LimitSlot(entry, this.windowOf(entry, at, context), target.customerId, contribution);
    }
    // Setting an array's length goes through the runtime (some 400 instructions), so only when some limit did not apply.
    if (n < slots.length) slots.length = n;
    return slots;
  }

  private needsCustomer(defs: Definitions, customerId: string): boolean {
    for (const l of defs.limits) {
      if ((l.customerId === undefined || l.customerId === customerId) && windowScope(l.period) !== 'utc') return true;
    }
    return false;
  }

  /** Runs a counters operation, seeding slots a counters-only store has never seen. */
  private applyCounters(op: CounterOperation): Promise<CounterResult> {
    return this.counters.apply(op).then((result) => (result.missing?.length && op.type !== 'release' && op.type !== 'seed' ? this.seedAndApply(op, result) : result));
  }

  /** Seeds the slots `result` reports missing from the ledger, then runs `op` again. */
  private async seedAndApply(op: Exclude<CounterOperation, { type: 'release' | 'seed' }>, result: CounterResult): Promise<CounterResult> {
    const missing = result.missing!;
    const slots = op.type === 'record' ? op.items.flatMap((i) => i.slots) : op.slots;
    const recentSince = op.now - RECENT_EVENTS_MS;
    const seeds = await Promise.all(
      missing.map(async (i) => {
        const slot = slots[i];
        if (this.ledger.seedState) return { slot, ...(await this.ledger.seedState(slot.source, recentSince)) };
        if (slot.aggregation === 'unique') {
          throw new TollgateError('store_unavailable', `The ledger store cannot seed unique-count limit ${slot.limitId} in a counters-only store: it lacks seedState().`);
        }
        return { slot, state: await this.ledger.meterState(slot.source), recentEventIds: [] };
      }),
    );
    // Events whose counter update waits to be retried are in the ledger, so in the seed: mark them counted.
    for (const seed of seeds) {
      const waiting = this.catchUp.eventIdsIn(seed.slot.key);
      if (waiting.length > 0) seed.recentEventIds = [...seed.recentEventIds, ...waiting];
    }
    if (op.type === 'record') {
      // The events of this operation are in the ledger already, so in the seed: mark them counted.
      const owner: string[] = op.items.flatMap((item) => item.slots.map(() => item.event.id));
      seeds.forEach((seed, j) => {
        const id = owner[missing[j]];
        if (!seed.recentEventIds.includes(id)) seed.recentEventIds = [...seed.recentEventIds, id];
      });
    }
    await this.counters.apply({ type: 'seed', now: op.now, seeds });
    const again = await this.counters.apply(op);
    // A record may have been applied in part before; keep the alerts of both passes.
    if (op.type === 'record') again.alerts = [...(result.alerts ?? []), ...(again.alerts ?? [])];
    return again;
  }

  private timed<T>(promise: Promise<T>): Promise<T> {
    return this.deadlines === null ? promise : this.deadlines.run(promise);
  }

  /** Decides an operation; synchronously when the counters store answers at once and is not timed. */
  private decide(op: CounterOperation): Decided | Promise<Decided> {
    if (this.applyNow !== null) {
      try {
        const result = this.applyNow(op);
        // A slot to seed from the ledger takes the full path (nothing was changed).
        if (!result.missing?.length) return { allowed: result.allowed, slots: result.slots, reason: 'limits' };
      } catch (error) {
        return { ...this.storePolicy(error), slots: [] };
      }
    }
    return this.decideAsync(op);
  }

  private async decideAsync(op: CounterOperation): Promise<Decided> {
    try {
      const result = await this.timed(this.applyCounters(op));
      return { allowed: result.allowed, slots: result.slots, reason: 'limits' };
    } catch (error) {
      return { ...this.storePolicy(error), slots: [] };
    }
  }

  /** The `onStoreError` answer for a failed store; anything but a store failure is rethrown. */
  private storePolicy(error: unknown): { allowed: boolean; reason: DecisionReason } {
    if (TollgateError.isInstance(error) && error.code !== 'store_timeout' && error.code !== 'store_unavailable') throw error;
    const open = this.policy === 'open';
    return { allowed: open, reason: open ? 'store_error_open' : 'store_error_closed' };
  }

  /**
   * Definitions and the customer's window context for a decision; synchronous when both are
   * cached. A decision waits for the ledger no longer than for the counters (`storeTimeoutMs`):
   * past it, `onStoreError` answers.
   */
  private prepare(customerId: string, create: boolean, at: number): Prepared | Promise<Prepared> {
    const defs = this.definitions(at);
    const prepared = defs instanceof Promise ? defs.then((d) => this.withContext(d, customerId, create, at)) : this.withContext(defs, customerId, create, at);
    return prepared instanceof Promise ? this.timed(prepared) : prepared;
  }

  private withContext(defs: Definitions, customerId: string, create: boolean, at: number): Prepared | Promise<Prepared> {
    const context = create || this.needsCustomer(defs, customerId) ? this.customerContext(customerId, create, at) : this.defaultContext(at);
    return context instanceof Promise ? context.then((c) => ({ defs, context: c })) : { defs, context };
  }

  private statuses(slots: LimitSlot[], result: { slots: CounterResult['slots'] }): LimitStatus[] {
    const n = result.slots.length === 0 ? 0 : slots.length;
    const out: LimitStatus[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const { limit, window, customerId } = slots[i];
      const { used, allowed } = result.slots[i];
      out[i] = {
        limitId: limit.id,
        limitName: limit.name,
        meterId: limit.meterId,
        customerId,
        mode: limit.mode,
        period: limit.period,
        limit: limit.limitValue,
        used,
        remaining: Math.max(0, limit.limitValue - used),
        exceeded: used >= limit.limitValue,
        allowed,
        reset: window.reset,
        windowStart: window.startIso,
        windowEnd: window.endIso,
      };
    }
    return out;
  }

  // ── recording ────────────────────────────────────────────────────────────

  /** The record item for an event; synchronous when the customer and definitions are cached. */
  private itemFor(event: StoredEvent, now: number, hold?: { id: string; slots: CounterSlot[] }): RecordItem | Promise<RecordItem> {
    const context = this.customerContext(event.customerId, true, now);
    const defs = this.definitions(now);
    if (context instanceof Promise || defs instanceof Promise) {
      return Promise.all([context, defs]).then(([c, d]) => this.buildItem(event, { context: c, defs: d }, hold));
    }
    return this.buildItem(event, { context, defs }, hold);
  }

  private buildItem(event: StoredEvent, { defs, context }: Prepared, hold?: { id: string; slots: CounterSlot[] }): RecordItem {
    const slots = this.slotsFor(defs, event, true, event.timestamp, context, event.values);
    return hold === undefined ? { event, slots } : { event, slots, holdId: hold.id, holdSlots: hold.slots };
  }

  /**
   * Records the items: synchronously when the counters store is the memory store used as it is.
   * `now` is the operation's time: a caller that did not wait since reading the clock passes its reading.
   */
  private recordItems(items: RecordItem[], now = this.clock()): Records | Promise<Records> {
    if (!this.combined) return this.recordApart(items, now);
    const op: CounterOperation = { type: 'record', now, persist: true, items };
    if (this.applyNow === null) return this.recordIn(op, items, now);
    let result: CounterResult;
    try {
      result = this.applyNow(op);
    } catch (e) {
      throw storeFailure(e, 'recording');
    }
    if (result.alerts !== undefined) this.emitAlerts(items, result, now);
    return result.records!;
  }

  /** One store keeps ledger and counters (SQLite, Postgres): one atomic call records and counts. */
  private async recordIn(op: CounterOperation, items: RecordItem[], now: number): Promise<Records> {
    let result: CounterResult;
    try {
      result = await this.counters.apply(op);
    } catch (e) {
      throw storeFailure(e, 'recording');
    }
    this.emitAlerts(items, result, now);
    return result.records!;
  }

  /**
   * Ledger first, then the counters beside it: the ledger's answer decides what is counted. A
   * counter update that fails (the counters store unreachable) waits in {@link catchUp} and is
   * applied again until it lands, so the counters do not stay short of the ledger.
   */
  private async recordApart(items: RecordItem[], now: number): Promise<Records> {
    let records: Records;
    try {
      records = await this.ledger.insertEvents(items.map((i) => i.event));
    } catch (e) {
      throw storeFailure(e, 'recording');
    }
    const fresh = items.filter((_, i) => records[i].recorded);
    const updates: Array<RecordOperation | ReleaseOperation> = [];
    if (fresh.length > 0) updates.push({ type: 'record', now, persist: false, items: fresh });
    items.forEach((item, i) => {
      // A duplicate commit counts nothing, but its reservation's hold is let go.
      if (!records[i].recorded && item.holdId !== undefined) updates.push({ type: 'release', now, holdId: item.holdId, slots: item.holdSlots ?? [] });
    });
    for (let i = 0; i < updates.length; i++) {
      const op = updates[i];
      let result: CounterResult;
      try {
        result = await this.timed(this.applyCounters(op));
      } catch (error) {
        this.catchUp.add(updates.slice(i), error);
        break;
      }
      if (op.type === 'record') this.emitAlerts(op.items, result, now);
      this.catchUp.storeAnswered();
    }
    return records;
  }

  private emitAlerts(items: RecordItem[], result: CounterResult, now: number): void {
    const onAlert = this.options.onAlert;
    if (!onAlert || !result.alerts?.length) return;
    const slots = items.flatMap((i) => i.slots);
    const defs = this.defs;
    for (const { slot: index, threshold, used } of result.alerts) {
      const slot = slots[index];
      const limit = defs?.limits.find((l) => l.id === slot.limitId);
      if (!limit) continue;
      const alert: AlertEvent = {
        type: threshold >= 100 ? 'limit.exceeded' : 'limit.threshold_reached',
        customerId: slot.customerId,
        limitId: limit.id,
        limitName: limit.name,
        threshold,
        limit: limit.limitValue,
        used,
        percentage: Math.round((used / limit.limitValue) * 10000) / 100,
        remaining: Math.max(0, limit.limitValue - used),
        period: limit.period,
        windowStart: iso(slot.windowStart),
        windowEnd: slot.windowEnd === null ? null : iso(slot.windowEnd),
        timestamp: iso(now),
      };
      try {
        const r = onAlert(alert);
        if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch(() => {});
      } catch {
        // An alert handler must never fail the record that triggered it.
      }
    }
  }

  private toStored(input: ParsedEvent, at: number): StoredEvent {
    const timestamp = input.timestamp ?? at;
    const id = newId('evt', timestamp);
    const values = input.values ?? (NONE as Values);
    const dimensions = input.dimensions ?? (NONE as Dimensions);
    // Two literals, each with all its keys: an event kept by the memory store gets no separate
    // property store (40 bytes) when it has an idempotency key or properties (a reservation's
    // commit always has one), and no two unused fields (16 bytes) when it has neither.
    if (input.properties === undefined && input.idempotencyKey === undefined) {
      return { id, customerId: input.customerId, eventType: input.eventType, values, dimensions, timestamp };
    }
    return { id, customerId: input.customerId, eventType: input.eventType, values, dimensions, timestamp, properties: input.properties, idempotencyKey: input.idempotencyKey };
  }

  // ── check and record, without a promise when nothing has to wait ─────────

  private recordNow(input: unknown): RecordResult | Promise<RecordResult> {
    const parsed = parseRecordEvent(input);
    if (!this.initialized) return this.whenReady().then(() => this.recordParsed(parsed));
    return this.recordParsed(parsed);
  }

  private recordParsed(parsed: ParsedEvent): RecordResult | Promise<RecordResult> {
    const now = this.clock();
    const item = this.itemFor(this.toStored(parsed, now), now);
    if (item instanceof Promise) return item.then((i) => this.recordOne(i));
    return this.recordOne(item, now);
  }

  /** Records one item; `now` as for {@link recordItems}. */
  private recordOne(item: RecordItem, now?: number): RecordResult | Promise<RecordResult> {
    const records = this.recordItems([item], now);
    return records instanceof Promise ? records.then((r) => r[0]) : records[0];
  }

  private checkNow(input: unknown): CheckResult | Promise<CheckResult> {
    const parsed = parseCheck(input);
    // A start-up that failed is a store failure: the onStoreError policy answers.
    if (!this.initialized) return this.timed(this.whenReady()).then(() => this.checkParsed(parsed), (error: unknown) => this.failedCheck(error));
    return this.checkParsed(parsed);
  }

  private checkParsed(parsed: ParsedCheck): CheckResult | Promise<CheckResult> {
    const at = this.clock();
    let prepared: Prepared | Promise<Prepared>;
    try {
      prepared = this.prepare(parsed.customerId, false, at);
    } catch (error) {
      return this.failedCheck(error);
    }
    if (prepared instanceof Promise) return prepared.then((p) => this.checkPrepared(parsed, at, p), (error: unknown) => this.failedCheck(error));
    return this.checkPrepared(parsed, at, prepared);
  }

  /** A check whose definitions or customer could not be loaded: the store policy answers. */
  private failedCheck(error: unknown): CheckResult {
    return { ...this.storePolicy(error), limits: [], retryAfter: null };
  }

  private checkPrepared(parsed: ParsedCheck, at: number, { defs, context }: Prepared): CheckResult | Promise<CheckResult> {
    const slots = this.slotsFor(defs, parsed, false, at, context, parsed.estimate);
    if (slots.length === 0) return { allowed: true, limits: [], reason: 'limits', retryAfter: null };
    const decided = this.decide({ type: 'check', now: at, slots });
    return decided instanceof Promise ? decided.then((d) => this.checkResult(slots, d, at)) : this.checkResult(slots, decided, at);
  }

  private checkResult(slots: LimitSlot[], result: Decided, at: number): CheckResult {
    const limits = this.statuses(slots, result);
    return { allowed: result.allowed, limits, reason: result.reason, retryAfter: result.allowed ? null : retryAfterSeconds(limits, at) };
  }

  // ── the public API ───────────────────────────────────────────────────────

  readonly api: Tollgate = {
    events: {
      record: (input) => promised(() => this.recordNow(input)),
      batchIngest: async (input) => {
        const parsed = parseBatchIngest(input);
        await this.ensureReady();
        const at = this.clock();
        const items: RecordItem[] = [];
        for (const e of parsed.events) items.push(await this.itemFor(this.toStored(e, at), this.clock()));
        const records = await this.recordItems(items);
        return { count: records.filter((r) => r.recorded).length };
      },
      list: async (input = {}) => {
        const parsed = parse(listEventsSchema, input, 'events.list input');
        await this.ensureReady();
        const limit = parsed.limit ?? 100;
        const cursor = parsed.cursor === undefined ? undefined : decodeCursor(parsed.cursor);
        const rows = await this.ledgerCall('listing events', () => this.ledger.listEvents(queryOf(parsed), limit + 1, cursor));
        const hasMore = rows.length > limit;
        const page = hasMore ? rows.slice(0, limit) : rows;
        return { data: page.map(toEvent), hasMore, nextCursor: hasMore ? encodeCursor(page[page.length - 1]) : null };
      },
      getSummary: async (input = {}) => {
        const parsed = parse(summarySchema, input, 'events.getSummary input');
        await this.ensureReady();
        return this.ledgerCall('summarising events', () => this.ledger.summarize(queryOf(parsed)));
      },
      getBreakdown: async (input) => {
        const parsed = parse(breakdownSchema, input, 'events.getBreakdown input');
        await this.ensureReady();
        const rows = await this.ledgerCall('breaking down events', () => this.ledger.breakdown(queryOf(parsed), parsed.groupBy));
        rows.sort((a, b) => b.totalEvents - a.totalEvents || String(a.dimension).localeCompare(String(b.dimension)));
        return { data: rows.map((r) => ({ dimension: r.dimension, totalEvents: r.totalEvents, values: r.values })) };
      },
      getTimeseries: async (input) => {
        const parsed = parse(timeseriesSchema, input, 'events.getTimeseries input');
        if (parsed.endDate <= parsed.startDate) {
          throw new TollgateError('invalid_request', 'Invalid events.getTimeseries input: endDate must be after startDate.', { issues: [{ path: 'endDate', message: 'must be after startDate' }] });
        }
        await this.ensureReady();
        const timezone = parsed.timezone ?? this.timezone;
        const context: WindowContext = { timezone, billingCycleStart: startOfLocalDay(timezone, 2000, 1, 1) };
        const boundaries = [windowFor(parsed.interval, parsed.startDate, context).start];
        while (boundaries[boundaries.length - 1] < parsed.endDate) {
          if (boundaries.length > MAX_BUCKETS) {
            throw new TollgateError('invalid_request', `Invalid events.getTimeseries input: more than ${MAX_BUCKETS} buckets. Use a larger interval or a shorter range.`, { issues: [{ path: 'interval', message: 'too many buckets' }] });
          }
          boundaries.push(windowFor(parsed.interval, boundaries[boundaries.length - 1], context).end!);
        }
        const totals = await this.ledgerCall('building a timeseries', () => this.ledger.timeseries(queryOf({ ...parsed, startDate: undefined, endDate: undefined }), boundaries));
        return { data: totals.map((t, i) => ({ start: iso(boundaries[i]), end: iso(boundaries[i + 1]), totalEvents: t.totalEvents, values: t.values })) };
      },
    },

    meters: {
      create: async (input) => {
        const parsed = parse(createMeterSchema, input, 'meter');
        await this.ensureReady();
        const at = iso(this.clock());
        const meter: Meter = { ...parsed, createdAt: at, updatedAt: at };
        const { created } = await this.ledgerCall('creating a meter', () => this.ledger.createMeter(meter));
        if (!created) throw alreadyExists('meter', meter.id);
        this.defs = null;
        return meter;
      },
      retrieve: async (id) => this.getMeter(parse(idSchema, id, 'meter id')),
      update: async (id, input) => {
        parse(idSchema, id, 'meter id');
        const patch = parse(updateMeterSchema, input, 'meter update');
        const meter = await this.getMeter(id);
        const next = withPatch(meter, patch, iso(this.clock()));
        if (!(await this.ledgerCall('updating a meter', () => this.ledger.updateMeter(next)))) throw notFound('meter', id);
        this.defs = null;
        return next;
      },
      delete: async (id) => {
        parse(idSchema, id, 'meter id');
        await this.ensureReady();
        const users = (await this.loadDefinitions()).limits.filter((l) => l.meterId === id).map((l) => l.id);
        if (users.length) {
          throw new TollgateError('invalid_request', `Meter "${id}" is used by limits ${users.join(', ')}. Delete those limits first.`, { issues: [{ path: 'id', message: 'meter in use' }] });
        }
        if (!(await this.ledgerCall('deleting a meter', () => this.ledger.deleteMeter(id)))) throw notFound('meter', id);
        this.defs = null;
        return { id, deleted: true as const };
      },
      list: async (input = {}) => {
        const parsed = parse(listSchema, input, 'list input');
        await this.ensureReady();
        return pageResult(await this.ledgerCall('listing meters', () => this.ledger.listMeters({ limit: parsed.limit ?? 100, cursor: parsed.cursor })));
      },
      query: async (id, input = {}) => {
        parse(idSchema, id, 'meter id');
        const parsed = parse(meterQuerySchema, input, 'meters.query input');
        const meter = await this.getMeter(id);
        const eventFilter = { ...meter.eventFilter, dimensions: { ...meter.eventFilter?.dimensions, ...parsed.dimensions } };
        const state = await this.ledgerCall('querying a meter', () =>
          this.ledger.meterState({ aggregation: meter.aggregation, field: meter.field, eventFilter, customerId: parsed.customerId, startDate: parsed.startDate, endDate: parsed.endDate }),
        );
        return { meterId: id, aggregation: meter.aggregation, value: valueOf(meter.aggregation, state), count: state.count };
      },
    },

    limits: {
      create: async (input) => {
        const parsed = parse(createLimitSchema, input, 'limit');
        await this.ensureReady();
        await this.getMeter(parsed.meterId);
        const at = iso(this.clock());
        const limit: Limit = { ...parsed, mode: parsed.mode ?? 'hard', createdAt: at, updatedAt: at };
        const { created } = await this.ledgerCall('creating a limit', () => this.ledger.createLimit(limit));
        if (!created) throw alreadyExists('limit', limit.id);
        this.defs = null;
        return limit;
      },
      retrieve: async (id) => this.getLimit(parse(idSchema, id, 'limit id')),
      update: async (id, input) => {
        parse(idSchema, id, 'limit id');
        const patch = parse(updateLimitSchema, input, 'limit update');
        const limit = await this.getLimit(id);
        const next = withPatch(limit, patch, iso(this.clock()));
        if (!(await this.ledgerCall('updating a limit', () => this.ledger.updateLimit(next)))) throw notFound('limit', id);
        this.defs = null;
        return next;
      },
      delete: async (id) => {
        parse(idSchema, id, 'limit id');
        await this.ensureReady();
        if (!(await this.ledgerCall('deleting a limit', () => this.ledger.deleteLimit(id)))) throw notFound('limit', id);
        this.defs = null;
        return { id, deleted: true as const };
      },
      list: async (input = {}) => {
        const parsed = parse(listSchema, input, 'list input');
        await this.ensureReady();
        return pageResult(await this.ledgerCall('listing limits', () => this.ledger.listLimits({ limit: parsed.limit ?? 100, cursor: parsed.cursor })));
      },
      check: (input) => promised(() => this.checkNow(input)),
    },

    customers: {
      create: async (input) => {
        const parsed = parse(createCustomerSchema, input, 'customer');
        await this.ensureReady();
        const at = iso(this.clock());
        const customer = compact<Customer>({
          id: parsed.id,
          name: parsed.name,
          email: parsed.email,
          timezone: parsed.timezone,
          billingCycleStart: parsed.billingCycleStart === undefined ? at : iso(parsed.billingCycleStart),
          metadata: parsed.metadata ?? {},
          createdAt: at,
          updatedAt: at,
        });
        const { created } = await this.ledgerCall('creating a customer', () => this.ledger.createCustomer(customer));
        if (!created) throw alreadyExists('customer', customer.id);
        this.customers.delete(customer.id);
        return customer;
      },
      retrieve: async (id) => this.getCustomer(parse(idSchema, id, 'customer id')),
      update: async (id, input) => {
        parse(idSchema, id, 'customer id');
        const patch = parse(updateCustomerSchema, input, 'customer update');
        const customer = await this.getCustomer(id);
        const next = withPatch(customer, { ...patch, billingCycleStart: patch.billingCycleStart === undefined ? undefined : iso(patch.billingCycleStart) }, iso(this.clock()));
        if (!(await this.ledgerCall('updating a customer', () => this.ledger.updateCustomer(next)))) throw notFound('customer', id);
        this.customers.delete(id);
        return next;
      },
      delete: async (id) => {
        parse(idSchema, id, 'customer id');
        await this.ensureReady();
        if (!(await this.ledgerCall('deleting a customer', () => this.ledger.deleteCustomer(id)))) throw notFound('customer', id);
        this.customers.delete(id);
        return { id, deleted: true as const };
      },
      list: async (input = {}) => {
        const parsed = parse(listSchema, input, 'list input');
        await this.ensureReady();
        return pageResult(await this.ledgerCall('listing customers', () => this.ledger.listCustomers({ limit: parsed.limit ?? 100, cursor: parsed.cursor })));
      },
    },

    reserve: async (input) => {
      const parsed = parseReserve(input);
      const startUp = this.initialized ? null : await this.timed(this.whenReady()).then(() => null, (error: unknown) => ({ error }));
      const at = this.clock();
      const id = newId('rsv', at);
      const expiresAt = at + (parsed.ttlMs ?? this.holdTtlMs);
      let slots: LimitSlot[] = [];
      let result: { allowed: boolean; slots: CounterResult['slots']; reason: DecisionReason };
      try {
        if (startUp !== null) throw startUp.error;
        const p = this.prepare(parsed.customerId, true, at);
        const { defs, context } = p instanceof Promise ? await p : p;
        slots = this.slotsFor(defs, parsed, false, at, context, parsed.estimate);
        const decided = slots.length === 0
          ? { allowed: true, slots: [], reason: 'limits' as const }
          : this.decide({ type: 'reserve', now: at, holdId: id, expiresAt, slots });
        result = decided instanceof Promise ? await decided : decided;
      } catch (error) {
        // The ledger failed while starting up or resolving the customer or the definitions: the policy decides, and nothing is held.
        slots = [];
        result = { ...this.storePolicy(error), slots: [] };
      }
      const limits = this.statuses(slots, result);
      const retryAfter = result.allowed ? null : retryAfterSeconds(limits, at);
      let settled = false;
      return {
        id,
        allowed: result.allowed,
        reason: result.reason,
        limits,
        expiresAt: iso(expiresAt),
        retryAfter,
        commit: async (commitInput = {}) => {
          const c = parseCommit(commitInput);
          if (!this.initialized) await this.whenReady();
          if (!result.allowed) {
            throw new TollgateError('limit_exceeded', `Reservation ${id} was denied; there is nothing to commit. Check reservation.allowed before doing the work.`, { limits, retryAfter });
          }
          const now = this.clock();
          const event = this.toStored(
            {
              customerId: parsed.customerId,
              eventType: parsed.eventType,
              values: c.values ?? parsed.estimate,
              dimensions: c.dimensions === undefined ? parsed.dimensions : { ...parsed.dimensions, ...c.dimensions },
              properties: c.properties,
              timestamp: c.timestamp,
              idempotencyKey: id,
            },
            now,
          );
          settled = true;
          const pending = this.itemFor(event, now, { id, slots });
          return pending instanceof Promise ? this.recordOne(await pending) : this.recordOne(pending, now);
        },
        release: async () => {
          if (settled || slots.length === 0 || !result.allowed) return;
          settled = true;
          await this.counters.apply({ type: 'release', now: this.clock(), holdId: id, slots }).catch((e) => { throw storeFailure(e, 'releasing a reservation'); });
        },
      };
    },

    ready: () => this.whenReady(),

    close: async () => {
      await this.initializing.catch(() => {});
      await this.catchUp.close();
      await this.ledger.close?.();
      if (!this.combined) await this.counters.close?.();
    },
  };

  /**
   * For checks whose limits use no customer calendar (UTC periods and durations only): their
   * windows come from the shared UTC cache, so one context serves them all, for good.
   */
  private defaultContext(at: number): CustomerContext {
    return (this.anonymous ??= this.contextFor(this.timezone, at, at, false));
  }

  private async ledgerCall<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      throw storeFailure(e, what);
    }
  }

  private async getMeter(id: string): Promise<Meter> {
    await this.ensureReady();
    const meter = await this.ledgerCall('reading a meter', () => this.ledger.getMeter(id));
    if (!meter) throw notFound('meter', id);
    return meter;
  }

  private async getLimit(id: string): Promise<Limit> {
    await this.ensureReady();
    const limit = await this.ledgerCall('reading a limit', () => this.ledger.getLimit(id));
    if (!limit) throw notFound('limit', id);
    return limit;
  }

  private async getCustomer(id: string): Promise<Customer> {
    await this.ensureReady();
    const customer = await this.ledgerCall('reading a customer', () => this.ledger.getCustomer(id));
    if (!customer) throw notFound('customer', id);
    return customer;
  }
}

function queryOf(q: { customerId?: string; eventType?: string; dimensions?: Dimensions; startDate?: number; endDate?: number }): EventQuery {
  return compact<EventQuery>({ customerId: q.customerId, eventType: q.eventType, dimensions: q.dimensions, startDate: q.startDate, endDate: q.endDate });
}

function pageResult<T>(page: { data: T[]; nextCursor: string | null }): Page<T> {
  return { data: page.data, hasMore: page.nextCursor !== null, nextCursor: page.nextCursor };
}

/** Drops undefined properties so stored and returned objects stay plain JSON. */
function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

/** Applies an update: undefined leaves a field, null removes it. */
function withPatch<T extends { updatedAt: string }>(current: T, patch: Record<string, unknown>, at: string): T {
  const next: Record<string, unknown> = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (v === null) delete next[k];
    else next[k] = v;
  }
  next.updatedAt = at;
  return next as T;
}

/**
 * The key of a limit's counters: what decides how they count, and the time of the last update of
 * the limit or its meter. An update gives the counters a new key, so they start again from the
 * ledger: a counter kept under an earlier definition missed the events recorded since, and going
 * back to that definition must not bring it back. A definition never updated (declared in code
 * and unchanged, or created once) has no update time in its key, so every process that creates
 * it alike, even on a ledger of its own beside shared Redis counters, shares its counters.
 */
function limitKeyOf(limit: Limit, meter: Meter): string {
  const revision = (d: Limit | Meter) => (d.updatedAt === d.createdAt ? null : d.updatedAt);
  return `${limit.id}@${fnv1a(canonical([limit.period, limit.dimensionFilters, meter.aggregation, meter.field, meter.eventFilter, revision(limit), revision(meter)]))}`;
}

/** A short stable hash (FNV-1a, 32 bits, base 36). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

function canonical(value: unknown): string {
  if (value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function sameDefinition(a: object, b: object): boolean {
  const strip = ({ createdAt: _c, updatedAt: _u, ...rest }: Record<string, unknown>) => canonical(rest);
  return strip(a as Record<string, unknown>) === strip(b as Record<string, unknown>);
}
