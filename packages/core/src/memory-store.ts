import { EventLog, RowList } from './event-log.js';
import { fieldSource } from './matching.js';
import { addToState, emptyState, holdAmount, reachedThresholds, rebuiltFired, slotAllows, usedWith, valueOf } from './slots.js';
import {
  STORE_CONTRACT_VERSION,
  type CounterOperation,
  type CounterResult,
  type CounterSlot,
  type CounterStore,
  type EventCursor,
  type EventQuery,
  type MeterSource,
  type Page,
  type SlotState,
  type Store,
  type StoreCapabilities,
  type StoredEvent,
  type ValueTotals,
} from './store.js';
import type { Customer, Dimensions, Limit, Meter } from './types.js';

interface Hold {
  id: string;
  amount: number;
  expiresAt: number;
}

/** Up to this many open holds a slot keeps them in an array (cheap to add and drop); beyond, in a Map. */
const FEW_HOLDS = 16;

/**
 * One slot: its running aggregate (the slot is its own {@link SlotState}, one object fewer to
 * reach) and its open holds. A class, so every slot has one hidden shape and the hot path stays
 * monomorphic.
 */
interface MemorySlot extends SlotState {}
class MemorySlot {
  /** Open holds in the order placed: an array while there are few, a Map by id once there are many. */
  holds: Hold[] | Map<string, Hold> | null = null;
  /** The sum of the open holds' amounts, kept as holds come and go (exactly 0 when none are open). */
  held = 0;
  /** The earliest expiry among `holds`, so lapsed holds are looked for only once one can have lapsed. */
  holdsExpireAt = Infinity;
  fired: Set<number> | null = null;
  /** Event ids counted here when events come from another ledger (retry safety). */
  applied: Set<string> | null = null;
  constructor(
    /** The {@link CounterSlot.limitKey} this slot counts for. */
    readonly limitKey: string,
    state: SlotState,
    public distinctValues: Set<string> | null,
    public windowStart: number,
    public windowEnd: number | null,
  ) {
    this.count = state.count;
    this.sum = state.sum;
    this.min = state.min;
    this.max = state.max;
    this.latest = state.latest;
    this.latestAt = state.latestAt;
    this.distinct = state.distinct;
  }

  get holdCount(): number {
    const h = this.holds;
    return h === null ? 0 : Array.isArray(h) ? h.length : h.size;
  }

  /** Places a hold last; one with the same id is replaced. */
  addHold(hold: Hold): void {
    this.dropHold(hold.id);
    const h = this.holds;
    if (h === null) this.holds = [hold];
    else if (!Array.isArray(h)) h.set(hold.id, hold);
    else if (h.length < FEW_HOLDS) h.push(hold);
    else this.holds = new Map([...h, hold].map((x) => [x.id, x]));
    this.held += hold.amount;
    if (hold.expiresAt < this.holdsExpireAt) this.holdsExpireAt = hold.expiresAt;
  }

  /** Drops the hold `id`; true if it was open. Allocates nothing: it runs twice per reservation. */
  dropHold(id: string): boolean {
    const h = this.holds;
    if (h === null) return false;
    let amount: number;
    if (Array.isArray(h)) {
      let i = 0;
      while (i < h.length && h[i].id !== id) i++;
      if (i === h.length) return false;
      amount = h[i].amount;
      for (; i < h.length - 1; i++) h[i] = h[i + 1];
      h.pop();
    } else {
      const dropped = h.get(id);
      if (dropped === undefined) return false;
      h.delete(id);
      amount = dropped.amount;
    }
    this.held = this.holdCount === 0 ? 0 : this.held - amount;
    return true;
  }

  /** Drops the holds that lapsed by `now`. */
  dropExpired(now: number): void {
    if (this.holds === null || this.holdsExpireAt > now) return;
    const kept = [...this.holds.values()].filter((hold) => hold.expiresAt > now);
    this.holds = kept.length > FEW_HOLDS ? new Map(kept.map((x) => [x.id, x])) : kept;
    this.held = kept.reduce((sum, hold) => sum + hold.amount, 0);
    this.holdsExpireAt = kept.reduce((min, hold) => Math.min(min, hold.expiresAt), Infinity);
  }
}

/**
 * Everything the store keeps for one customer, behind one lookup: a decision or a record touches
 * one small record instead of several maps keyed by customer (on a busy process, each of those
 * lookups is a cache miss).
 */
class CustomerData {
  /** The customer's id: every kept event of the customer shares this one string (one object fewer per event). */
  constructor(readonly customerId: string) {}
  /** The latest window of each limit, by limit key. */
  readonly latest = new Map<string, MemorySlot>();
  /** Earlier windows that backdated events or old holds still use, keyed by `${limitKey}|${windowStart}`. */
  readonly earlier = new Map<string, MemorySlot>();
  /**
   * The slots the customer's last operation read, by position: the next one (a reservation's
   * commit, the next check) asks for the same limits in the same order, and finds them here
   * without a lookup by limit key. Emptied when a sweep drops slots.
   */
  readonly recent: MemorySlot[] = [];
  /** The customer's events (rows of the store's {@link EventLog}), ascending by (timestamp, id). */
  readonly rows = new RowList();
  /** The customer id's code in the event log; -1 until the customer's first event. */
  code = -1;
  /** Event id by idempotency key. */
  byKey: Map<string, string> | null = null;
  /** Rows of reservation commits whose key (the reservation id) is not in `byKey` yet. */
  unindexed: number[] | null = null;
}

const SWEEP_EVERY = 8192;

function pageOf<T extends { id: string }>(map: Map<string, T>, limit: number, cursor?: string): Page<T> {
  const ids = [...map.keys()].sort();
  const start = cursor === undefined ? 0 : ids.findIndex((id) => id > cursor);
  const slice = start < 0 ? [] : ids.slice(start, start + limit);
  const hasMore = start >= 0 && start + limit < ids.length;
  return { data: slice.map((id) => map.get(id)!), nextCursor: hasMore ? slice[slice.length - 1] : null };
}

/**
 * The default store: ledger and counters in this process's memory. Fast (per-slot counters,
 * no event scans on the check path) and atomic for concurrent async callers because every
 * operation runs synchronously to completion. Nothing survives the process and nothing is
 * shared between processes: use the SQLite, Postgres or Redis stores for that.
 */
export function memoryStore(): Store {
  return new MemoryStore();
}

/**
 * The memory store's synchronous `apply`, when `store` is a memory store used as it is: the engine
 * then decides without promise hops. A wrapped store (a proxy or subclass replacing `apply`, say
 * to inject failures or trace calls) gets null, so every operation goes through its `apply`.
 */
export function applyNowOf(store: CounterStore): ((op: CounterOperation) => CounterResult) | null {
  return store instanceof MemoryStore && store.apply === MemoryStore.prototype.apply ? (op) => store.applyNow(op) : null;
}

class MemoryStore implements Store {
  readonly capabilities: StoreCapabilities = {
    contract: STORE_CONTRACT_VERSION,
    ledger: true,
    counters: true,
    shared: false,
    durable: false,
  };

  private readonly customers = new Map<string, Customer>();
  private readonly meters = new Map<string, Meter>();
  private readonly limits = new Map<string, Limit>();
  /** Every event, in columns. */
  private readonly log = new EventLog();
  /** Every event's row, ascending by (timestamp, id). */
  private readonly order = new RowList();
  private readonly byCustomer = new Map<string, CustomerData>();
  /**
   * The customer the last lookup found: an operation reads every slot of one customer, and a
   * reservation's commit follows it, so most lookups are this one and skip the map.
   */
  private lastCustomer: CustomerData | null = null;
  private operations = 0;
  /** The earliest end among the windows of the slots kept: until then, a sweep would find nothing. */
  private nextWindowEnd = Infinity;

  // ── definitions ────────────────────────────────────────────────────────────

  async createCustomer(customer: Customer) {
    const existing = this.customers.get(customer.id);
    if (existing) return { created: false, customer: existing };
    this.customers.set(customer.id, customer);
    return { created: true, customer };
  }
  async getCustomer(id: string) { return this.customers.get(id) ?? null; }
  async updateCustomer(customer: Customer) { return this.replace(this.customers, customer); }
  async deleteCustomer(id: string) { return this.customers.delete(id); }
  async listCustomers(page: { limit: number; cursor?: string }) { return pageOf(this.customers, page.limit, page.cursor); }

  async createMeter(meter: Meter) {
    const existing = this.meters.get(meter.id);
    if (existing) return { created: false, meter: existing };
    this.meters.set(meter.id, meter);
    return { created: true, meter };
  }
  async getMeter(id: string) { return this.meters.get(id) ?? null; }
  async updateMeter(meter: Meter) { return this.replace(this.meters, meter); }
  async deleteMeter(id: string) { return this.meters.delete(id); }
  async listMeters(page: { limit: number; cursor?: string }) { return pageOf(this.meters, page.limit, page.cursor); }

  async createLimit(limit: Limit) {
    const existing = this.limits.get(limit.id);
    if (existing) return { created: false, limit: existing };
    this.limits.set(limit.id, limit);
    return { created: true, limit };
  }
  async getLimit(id: string) { return this.limits.get(id) ?? null; }
  async updateLimit(limit: Limit) { return this.replace(this.limits, limit); }
  async deleteLimit(id: string) { return this.limits.delete(id); }
  async listLimits(page: { limit: number; cursor?: string }) { return pageOf(this.limits, page.limit, page.cursor); }

  private replace<T extends { id: string }>(map: Map<string, T>, value: T): boolean {
    if (!map.has(value.id)) return false;
    map.set(value.id, value);
    return true;
  }

  // ── ledger ────────────────────────────────────────────────────────────────

  async insertEvents(events: StoredEvent[]) {
    return events.map((e) => this.insertEvent(e));
  }

  /**
   * Adds an event unless its idempotency key was seen for its customer. `commitsOpenHold` says the
   * event commits a reservation whose hold was still open: that reservation has not been committed
   * before, so its key (the reservation id) goes to a list indexed only when a lookup needs it,
   * which spares the common reserve/commit path a hash-map insert.
   */
  private insertEvent(event: StoredEvent, commitsOpenHold = false): { id: string; recorded: boolean } {
    const own = this.dataOf(event.customerId);
    const key = event.idempotencyKey;
    if (key !== undefined) {
      let first = own.byKey === null ? undefined : own.byKey.get(key);
      if (first === undefined && !commitsOpenHold && own.unindexed !== null && own.unindexed.length > 0) {
        const byKey = (own.byKey ??= new Map());
        for (const row of own.unindexed) {
          const k = this.log.idempotencyKey(row)!;
          if (!byKey.has(k)) byKey.set(k, this.log.id(row));
        }
        own.unindexed.length = 0;
        first = byKey.get(key);
      }
      if (first !== undefined) return { id: first, recorded: false };
    }
    if (own.code < 0) own.code = this.log.code(own.customerId);
    const row = this.log.append(event, own.code);
    if (key !== undefined) {
      if (commitsOpenHold) (own.unindexed ??= []).push(row);
      else (own.byKey ??= new Map()).set(key, event.id);
    }
    this.order.insert(this.log, row);
    own.rows.insert(this.log, row);
    return { id: event.id, recorded: true };
  }

  /** The customer's rows, or every row without a customer; undefined for a customer without events. */
  private listOf(customerId: string | undefined): RowList | undefined {
    return customerId === undefined ? this.order : this.byCustomer.get(customerId)?.rows;
  }

  /** The rows a query reads, and the range of them its dates cover; null when none can match. */
  private rowsOf(query: { customerId?: string; startDate?: number; endDate?: number | null }): { rows: Int32Array; from: number; to: number } | null {
    const list = this.listOf(query.customerId);
    if (list === undefined) return null;
    const from = query.startDate === undefined ? 0 : list.lowerBound(this.log, query.startDate);
    const to = query.endDate === undefined || query.endDate === null ? list.length : list.lowerBound(this.log, query.endDate);
    return { rows: list.rows, from, to };
  }

  /**
   * A test of rows against a customer, an event type and dimension filters (dates are the
   * caller's range); null when no row can match (a customer or event type no event has).
   */
  private matcher(customerId: string | undefined, eventType: string | undefined, dimensions?: Dimensions, more?: Dimensions): ((row: number) => boolean) | null {
    const log = this.log;
    const customer = customerId === undefined ? -1 : log.knownCode(customerId);
    const type = eventType === undefined ? -1 : log.knownCode(eventType);
    if ((customerId !== undefined && customer < 0) || (eventType !== undefined && type < 0)) return null;
    return (row) =>
      (customer < 0 || log.customerCode(row) === customer) &&
      (type < 0 || log.eventTypeCode(row) === type) &&
      log.dimensionsMatch(row, dimensions) &&
      log.dimensionsMatch(row, more);
  }

  private queryMatcher(query: EventQuery): ((row: number) => boolean) | null {
    return this.matcher(query.customerId, query.eventType, query.dimensions);
  }

  /** A meter source's test: its event filter, and the limit's dimension filters too. */
  private sourceMatcher(source: MeterSource): ((row: number) => boolean) | null {
    return this.matcher(source.customerId, source.eventFilter?.eventType, source.eventFilter?.dimensions, source.dimensionFilters);
  }

  /** Counts the row in `totals` and adds its values. */
  private addTotals(totals: ValueTotals, row: number): void {
    totals.totalEvents += 1;
    this.log.addValues(row, totals.values);
  }

  async listEvents(query: EventQuery, limit: number, cursor?: EventCursor) {
    const out: StoredEvent[] = [];
    const list = this.listOf(query.customerId);
    const matches = this.queryMatcher(query);
    if (list === undefined || matches === null) return out;
    let i = list.length - 1;
    if (query.endDate !== undefined) i = Math.min(i, list.lowerBound(this.log, query.endDate) - 1);
    if (cursor) i = Math.min(i, list.lowerBound(this.log, cursor.timestamp, cursor.id) - 1);
    for (; i >= 0 && out.length < limit; i--) {
      const row = list.rows[i];
      if (query.startDate !== undefined && this.log.timestamp(row) < query.startDate) break;
      if (matches(row)) out.push(this.log.event(row));
    }
    return out;
  }

  async summarize(query: EventQuery) {
    const totals: ValueTotals = { totalEvents: 0, values: {} };
    const range = this.rowsOf(query);
    const matches = this.queryMatcher(query);
    if (range === null || matches === null) return totals;
    const { rows, from, to } = range;
    for (let i = from; i < to; i++) {
      const row = rows[i];
      if (!matches(row)) continue;
      this.addTotals(totals, row);
    }
    return totals;
  }

  async breakdown(query: EventQuery, groupBy: string) {
    const groups = new Map<string | null, ValueTotals>();
    const range = this.rowsOf(query);
    const matches = this.queryMatcher(query);
    if (range === null || matches === null) return [];
    const log = this.log;
    const { rows, from, to } = range;
    for (let i = from; i < to; i++) {
      const row = rows[i];
      if (!matches(row)) continue;
      const key = groupBy === 'customerId' ? log.customerId(row) : groupBy === 'eventType' ? log.eventType(row) : log.dimension(row, groupBy) ?? null;
      let totals = groups.get(key);
      if (!totals) groups.set(key, (totals = { totalEvents: 0, values: {} }));
      this.addTotals(totals, row);
    }
    return [...groups].map(([dimension, totals]) => ({ dimension, ...totals }));
  }

  async timeseries(query: EventQuery, boundaries: number[]) {
    const buckets: ValueTotals[] = boundaries.slice(1).map(() => ({ totalEvents: 0, values: {} }));
    const range = this.rowsOf({ ...query, startDate: boundaries[0], endDate: boundaries[boundaries.length - 1] });
    const matches = this.queryMatcher(query);
    if (range === null || matches === null) return buckets;
    const { rows, from, to } = range;
    let b = 0;
    for (let i = from; i < to; i++) {
      const row = rows[i];
      const t = this.log.timestamp(row);
      while (t >= boundaries[b + 1]) b++;
      if ((query.startDate !== undefined && t < query.startDate) || (query.endDate !== undefined && t >= query.endDate) || !matches(row)) continue;
      this.addTotals(buckets[b], row);
    }
    return buckets;
  }

  async meterState(source: MeterSource) {
    return this.buildState(source).state;
  }

  async seedState(source: MeterSource, recentSince: number) {
    const { state, distinctValues } = this.buildState(source);
    const recentEventIds: string[] = [];
    const range = this.rowsOf({ ...source, startDate: Math.max(source.startDate ?? 0, recentSince) });
    const matches = this.sourceMatcher(source);
    if (range !== null && matches !== null) {
      for (let i = range.from; i < range.to; i++) if (matches(range.rows[i])) recentEventIds.push(this.log.id(range.rows[i]));
    }
    return distinctValues ? { state, distinctValues: [...distinctValues], recentEventIds } : { state, recentEventIds };
  }

  private buildState(source: MeterSource): { state: SlotState; distinctValues: Set<string> | null } {
    const state = emptyState();
    const distinctValues = source.aggregation === 'unique' ? new Set<string>() : null;
    const range = this.rowsOf(source);
    const matches = this.sourceMatcher(source);
    if (range === null || matches === null) return { state, distinctValues };
    const log = this.log;
    const field = fieldSource(source.field);
    for (let i = range.from; i < range.to; i++) {
      const row = range.rows[i];
      if (!matches(row)) continue;
      const value = field.from === 'count' ? 1 : field.from === 'values' ? log.value(row, field.key) : log.dimension(row, field.key);
      if (value === undefined) continue;
      const isNew = distinctValues !== null && !distinctValues.has(String(value));
      if (isNew) distinctValues!.add(String(value));
      addToState(state, distinctValues ? String(value) : (value as number), log.timestamp(row), isNew);
    }
    return { state, distinctValues };
  }

  // ── counters ──────────────────────────────────────────────────────────────

  /** The state of `slot`, the `position`-th slot of its operation; built from the ledger if new. */
  private slotFor(slot: CounterSlot, now: number, position: number): MemorySlot {
    let own = this.customerData(slot.customerId);
    let s = own !== undefined && position < own.recent.length ? own.recent[position] : undefined;
    if (s !== undefined && s.limitKey === slot.limitKey && s.windowStart === slot.windowStart) {
      s.dropExpired(now);
      return s;
    }
    s = own === undefined ? undefined : this.slotIn(own, slot);
    if (s === undefined) {
      const built = this.buildState(slot.source);
      s = new MemorySlot(slot.limitKey, built.state, built.distinctValues, slot.windowStart, slot.windowEnd);
      const fired = rebuiltFired(slot, s);
      if (fired.length > 0) s.fired = new Set(fired);
      own = this.putSlot(slot, s);
    } else {
      s.dropExpired(now);
    }
    if (position <= own!.recent.length) own!.recent[position] = s;
    return s;
  }

  private dataOf(customerId: string): CustomerData {
    let own = this.customerData(customerId);
    if (own === undefined) this.byCustomer.set(customerId, (own = new CustomerData(customerId)));
    return (this.lastCustomer = own);
  }

  private customerData(customerId: string): CustomerData | undefined {
    const last = this.lastCustomer;
    if (last !== null && last.customerId === customerId) return last;
    const own = this.byCustomer.get(customerId);
    if (own !== undefined) this.lastCustomer = own;
    return own;
  }

  private findSlot(slot: CounterSlot): MemorySlot | undefined {
    const own = this.customerData(slot.customerId);
    return own === undefined ? undefined : this.slotIn(own, slot);
  }

  private slotIn(own: CustomerData, slot: CounterSlot): MemorySlot | undefined {
    const s = own.latest.get(slot.limitKey);
    if (s !== undefined && s.windowStart === slot.windowStart) return s;
    return own.earlier.size === 0 ? undefined : own.earlier.get(`${slot.limitKey}|${slot.windowStart}`);
  }

  private putSlot(slot: CounterSlot, s: MemorySlot): CustomerData {
    if (s.windowEnd !== null && s.windowEnd < this.nextWindowEnd) this.nextWindowEnd = s.windowEnd;
    const own = this.dataOf(slot.customerId);
    const latest = own.latest.get(slot.limitKey);
    if (latest === undefined || s.windowStart > latest.windowStart) {
      own.latest.set(slot.limitKey, s);
      if (latest !== undefined) own.earlier.set(`${slot.limitKey}|${latest.windowStart}`, latest);
    } else {
      own.earlier.set(`${slot.limitKey}|${s.windowStart}`, s);
    }
    return own;
  }

  private usedOf(slot: CounterSlot, s: MemorySlot): number {
    const value = valueOf(slot.aggregation, s);
    if (s.holds === null) return value;
    switch (slot.aggregation) {
      case 'sum': case 'count': case 'unique':
        return value + s.held;
      case 'max': case 'latest':
        return usedWith(slot.aggregation, s, Array.from(s.holds.values(), (h) => [h.id, h.amount] as const));
      default:
        return value;
    }
  }

  private isNewDistinct(slot: CounterSlot, s: MemorySlot): boolean {
    return typeof slot.contribution === 'string' && s.distinctValues !== null && !s.distinctValues.has(slot.contribution);
  }

  async apply(op: CounterOperation): Promise<CounterResult> {
    return this.applyNow(op);
  }

  applyNow(op: CounterOperation): CounterResult {
    if (++this.operations % SWEEP_EVERY === 0 && op.now >= this.nextWindowEnd) this.sweep(op.now);
    switch (op.type) {
      case 'check':
      case 'reserve': {
        const n = op.slots.length;
        const results: CounterResult['slots'] = new Array(n);
        const reserve = op.type === 'reserve' ? op : null;
        const states: MemorySlot[] | null = reserve === null ? null : new Array(n);
        let allowed = true;
        for (let i = 0; i < n; i++) {
          const slot = op.slots[i];
          const s = this.slotFor(slot, op.now, i);
          if (states !== null) states[i] = s;
          const used = this.usedOf(slot, s);
          const ok = slotAllows(slot, s, used, this.isNewDistinct(slot, s));
          if (!ok) allowed = false;
          results[i] = { used, allowed: ok };
        }
        if (reserve !== null && states !== null && allowed) {
          for (let i = 0; i < n; i++) {
            const slot = op.slots[i];
            const s = states[i];
            const amount = holdAmount(slot, this.isNewDistinct(slot, s));
            if (amount === null) continue;
            s.addHold({ id: reserve.holdId, amount, expiresAt: reserve.expiresAt });
            results[i].used = this.usedOf(slot, s);
          }
        }
        return { allowed, slots: results };
      }
      case 'record': {
        const records: Array<{ id: string; recorded: boolean }> = new Array(op.items.length);
        let slotCount = 0;
        for (const item of op.items) slotCount += item.slots.length;
        const slots: CounterResult['slots'] = new Array(slotCount);
        let alerts: CounterResult['alerts'];
        let slotIndex = 0;
        for (let j = 0; j < op.items.length; j++) {
          const item = op.items[j];
          const n = item.slots.length;
          const states: MemorySlot[] = new Array(n);
          for (let i = 0; i < n; i++) states[i] = this.slotFor(item.slots[i], op.now, i);
          const holdWasOpen = item.holdId !== undefined && this.dropHold(item.holdId, item.holdSlots ?? [], item.slots, states);
          const record = op.persist ? this.insertEvent(item.event, holdWasOpen && item.event.idempotencyKey === item.holdId) : { id: item.event.id, recorded: true };
          records[j] = record;
          for (let i = 0; i < n; i++) {
            const slot = item.slots[i];
            const s = states[i];
            let counts = record.recorded && slot.contribution !== null;
            if (counts && !op.persist) {
              s.applied ??= new Set();
              if (s.applied.has(item.event.id)) counts = false;
              else s.applied.add(item.event.id);
            }
            if (counts) {
              const isNew = this.isNewDistinct(slot, s);
              if (isNew) s.distinctValues!.add(slot.contribution as string);
              addToState(s, slot.contribution!, item.event.timestamp, isNew);
            }
            const used = this.usedOf(slot, s);
            const at = slotIndex++;
            slots[at] = { used, allowed: true };
            if (!counts) continue;
            for (const threshold of reachedThresholds(slot, used)) {
              s.fired ??= new Set();
              if (s.fired.has(threshold)) continue;
              s.fired.add(threshold);
              (alerts ??= []).push({ slot: at, threshold, used });
            }
          }
        }
        return alerts === undefined ? { allowed: true, slots, records } : { allowed: true, slots, records, alerts };
      }
      case 'release':
        this.dropHold(op.holdId, op.slots);
        return { allowed: true, slots: [] };
      case 'seed':
        for (const { slot, state, distinctValues } of op.seeds) {
          if (this.findSlot(slot) !== undefined) continue;
          this.putSlot(slot, new MemorySlot(slot.limitKey, state, slot.aggregation === 'unique' ? new Set(distinctValues) : null, slot.windowStart, slot.windowEnd));
        }
        return { allowed: true, slots: [] };
    }
  }

  /**
   * Drops a reservation's holds; true if one was still open. A commit passes the slots it records
   * in and their states: a hold slot at the same position with the same limit, customer and window
   * (the usual case) is that state, found without another lookup.
   */
  private dropHold(holdId: string, slots: CounterSlot[], near?: CounterSlot[], states?: MemorySlot[]): boolean {
    let dropped = false;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i];
      const same = near !== undefined && i < near.length && near[i].limitKey === slot.limitKey && near[i].windowStart === slot.windowStart && near[i].customerId === slot.customerId;
      if ((same ? states![i] : this.findSlot(slot))?.dropHold(holdId)) dropped = true;
    }
    return dropped;
  }

  /**
   * Forgets the state of ended windows without open holds; it is rebuilt from the ledger if an
   * event lands there later. Runs every {@link SWEEP_EVERY} operations once a kept window has ended.
   */
  private sweep(now: number): void {
    let next = Infinity;
    // forEach rather than for-of: no [key, value] array per entry, and this visits every slot.
    const dropEnded = (s: MemorySlot, key: string, slots: Map<string, MemorySlot>) => {
      if (s.windowEnd === null) return;
      if (s.windowEnd <= now) {
        s.dropExpired(now);
        if (s.holdCount === 0) return void slots.delete(key);
      }
      if (s.windowEnd < next) next = s.windowEnd;
    };
    this.lastCustomer = null;
    this.byCustomer.forEach((own, customerId) => {
      own.recent.length = 0;
      own.latest.forEach(dropEnded);
      if (own.earlier.size > 0) own.earlier.forEach(dropEnded);
      if (own.latest.size === 0 && own.earlier.size === 0 && own.rows.length === 0) this.byCustomer.delete(customerId);
    });
    this.nextWindowEnd = next;
  }

  async close() {}
}
