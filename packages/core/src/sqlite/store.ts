import type BetterSqlite3 from 'better-sqlite3';
import { TollgateError } from '../errors.js';
import { emptyState, rebuiltFired } from '../slots.js';
import {
  STORE_CONTRACT_VERSION,
  type CounterOperation,
  type CounterResult,
  type CounterSlot,
  type EventCursor,
  type EventQuery,
  type MeterSource,
  type Page,
  type SeedState,
  type SlotState,
  type Store,
  type StoreCapabilities,
  type StoredEvent,
  type ValueTotals,
} from '../store.js';
import type { Customer, Limit, Meter } from '../types.js';
import { allStorable, assertStorable, assertStorableEvents, eventFromRow, loadDriver, valueKeysOf, type EventRow } from '../sql/common.js';
import {
  appliedProbes,
  assertStorableSlots,
  freshEvents,
  idempotencyId,
  idempotencyProbes,
  planOperation,
  slotsOf,
  valueProbes,
  type CounterWrites,
  type LoadedSlot,
} from '../sql/counters.js';
import {
  MAX_VALUE_COLUMNS,
  distinctValuesStatement,
  listEventsStatement,
  meterStateStatement,
  recentEventIdsStatement,
  stateFromRow,
  totalsByKeyStatement,
  totalsFromColumns,
  totalsFromKeyRows,
  totalsStatement,
  type Dialect,
  type Grouping,
  type MeterStateRow,
  type Statement,
  type TotalsRow,
} from '../sql/queries.js';
import { MIGRATIONS_TABLE, PREFIX, migrations } from './schema.js';

/**
 * The parts of a better-sqlite3 `Database` the store uses. Declared here so that the types of
 * `@tollgate/core/sqlite` do not require `@types/better-sqlite3`; pass the real object.
 */
export interface SqliteDatabase {
  prepare(source: string): unknown;
  exec(source: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction(fn: (...args: never[]) => unknown): unknown;
  close(): unknown;
  readonly open: boolean;
  readonly memory: boolean;
}

export type SqliteConnection =
  /** A database file, opened (and created) by the store and closed by `close()`. */
  | { path: string }
  /** An open better-sqlite3 database; the store never closes it. */
  | { database: SqliteDatabase };

export interface SqliteStoreOptions {
  /**
   * How long a write waits for another process's transaction before failing, in ms. Applies to
   * a database the store opens itself; an injected database keeps its own `timeout`. Default 5000.
   */
  busyTimeoutMs?: number;
  /**
   * `PRAGMA synchronous` for a database the store opens. `'normal'` (default) is safe against
   * process crashes in WAL mode and may lose the last transactions on power loss; `'full'`
   * survives power loss at the cost of an fsync per transaction.
   */
  synchronous?: 'normal' | 'full';
}

/** Write operations between two sweeps of ended windows and lapsed holds. */
const SWEEP_EVERY = 8192;
const SIMPLE_KEY = /^[A-Za-z0-9_.:-]+$/;
const STATEMENT_CACHE_MAX = 200;

type Db = BetterSqlite3.Database;
type Stmt = BetterSqlite3.Statement;

const T = {
  customers: `${PREFIX}customers`,
  meters: `${PREFIX}meters`,
  limits: `${PREFIX}limits`,
  events: `${PREFIX}events`,
  valueKeys: `${PREFIX}value_keys`,
  counters: `${PREFIX}counters`,
  holds: `${PREFIX}counter_holds`,
  alerts: `${PREFIX}counter_alerts`,
  values: `${PREFIX}counter_values`,
  applied: `${PREFIX}counter_events`,
};

function jsonPath(key: string): string {
  return `$."${key}"`;
}

/** Named parameters (`@p0`): the builders add parameters in call order, not text order. */
const dialect: Dialect = {
  events: T.events,
  param(params, value) {
    params.push(value);
    return `@p${params.length - 1}`;
  },
  dimension(key, params) {
    // A key with quotes cannot be written as a JSON path; look it up through json_each instead.
    if (SIMPLE_KEY.test(key)) return `json_extract(dimensions, ${this.param(params, jsonPath(key))})`;
    return `(SELECT value FROM json_each(dimensions) WHERE key = ${this.param(params, key)})`;
  },
  value(key, params) {
    if (SIMPLE_KEY.test(key)) return `json_extract(event_values, ${this.param(params, jsonPath(key))})`;
    return `(SELECT value FROM json_each(event_values) WHERE key = ${this.param(params, key)})`;
  },
  dimensionsMatch(filter, params) {
    return Object.entries(filter).map(([k, v]) => `${this.dimension(k, params)} = ${this.param(params, v)}`).join(' AND ');
  },
  float: (expr) => `CAST(${expr} AS REAL)`,
  buckets(boundaries, params) {
    // Buckets drive the join (CROSS JOIN keeps them outer) so each one is an index range scan.
    const b = this.param(params, JSON.stringify(boundaries));
    return {
      from: `(SELECT CAST(key AS INTEGER) AS i, value AS lo, lead(value) OVER (ORDER BY CAST(key AS INTEGER)) AS hi FROM json_each(${b})) AS b CROSS JOIN ${T.events}`,
      group: 'b.i',
      where: ['b.hi IS NOT NULL', 'timestamp_ms >= b.lo', 'timestamp_ms < b.hi'],
    };
  },
  // Values and dimensions are stored as JSONB (SQLite's binary JSON: read without parsing text).
  readJson: (column) => `json(${column})`,
  expandValues: () => ({ join: 'JOIN json_each(event_values) AS x', key: 'x.key', value: 'x.value' }),
  groupOverExtracted: 'LIMIT -1',
};

const named = (params: unknown[]) => Object.fromEntries(params.map((v, i) => [`p${i}`, v]));

interface CounterRow {
  event_count: number;
  value_sum: number;
  value_min: number | null;
  value_max: number | null;
  latest_value: number | null;
  latest_at: number | null;
  distinct_count: number;
}

function stateOf(row: CounterRow): SlotState {
  return {
    count: row.event_count,
    sum: row.value_sum,
    min: row.value_min,
    max: row.value_max,
    latest: row.latest_value,
    latestAt: row.latest_at,
    distinct: row.distinct_count,
  };
}

/** Throws unless SQLite `version` has JSONB (3.45 or newer), which the events table needs. */
export function requireJsonb(version: string): void {
  const [major, minor] = version.split('.').map(Number);
  if (!(major > 3 || (major === 3 && minor >= 45))) {
    throw new TollgateError('store_unavailable', `sqliteStore needs SQLite 3.45 or newer (it stores events as JSONB); this better-sqlite3 runs SQLite ${version}. Install better-sqlite3@12, which bundles a newer SQLite.`);
  }
}

/**
 * A SQLite store (better-sqlite3 12): ledger and counters in one database file, shared safely
 * by every process on the machine. WAL mode lets readers run beside the writer; every write is
 * one `BEGIN IMMEDIATE` transaction, so counter updates of concurrent processes serialise and N
 * callers racing for the last unit get exactly as many successes as fit.
 *
 * @example
 * import { sqliteStore } from '@tollgate/core/sqlite';
 * const tollgate = createTollgate({ store: sqliteStore({ path: './tollgate.db' }) });
 */
export function sqliteStore(connection: SqliteConnection, options: SqliteStoreOptions = {}): Store {
  return new SqliteStore(connection, options);
}

class SqliteStore implements Store {
  readonly capabilities: StoreCapabilities = {
    contract: STORE_CONTRACT_VERSION,
    ledger: true,
    counters: true,
    shared: true,
    durable: true,
  };

  private db: Db | null = null;
  private opening: Promise<Db> | null = null;
  private readonly owned: boolean;
  private readonly statements = new Map<string, Stmt>();
  private writes = 0;
  private closed = false;

  constructor(
    private readonly connection: SqliteConnection,
    private readonly options: SqliteStoreOptions,
  ) {
    const c = connection as Partial<{ path: unknown; database: { prepare?: unknown } }>;
    if (c && typeof c.path === 'string' && c.path.length > 0) this.owned = true;
    else if (c && c.database && typeof c.database.prepare === 'function') this.owned = false;
    else {
      throw new TollgateError('invalid_request', 'sqliteStore needs { path: "./tollgate.db" } or { database } (an open better-sqlite3 Database).', {
        issues: [{ path: 'connection', message: 'expected { path } or { database }' }],
      });
    }
  }

  // ── set-up ─────────────────────────────────────────────────────────────────

  init(): Promise<void> {
    return this.open().then(() => undefined);
  }

  private open(): Promise<Db> {
    if (this.db) return Promise.resolve(this.db);
    if (this.closed) return Promise.reject(new TollgateError('store_unavailable', 'This sqliteStore was closed. Create a new store to use the database again.'));
    this.opening ??= this.connect().then(
      (db) => (this.db = db),
      (error) => {
        this.opening = null;
        throw error;
      },
    );
    return this.opening;
  }

  private async connect(): Promise<Db> {
    let db: Db;
    if ('database' in this.connection) {
      db = this.connection.database as unknown as Db;
    } else {
      const driver = await loadDriver(() => import('better-sqlite3'), 'better-sqlite3', 'npm i better-sqlite3@12', 'sqliteStore', 'an open better-sqlite3 Database as { database }');
      const Database = ((driver as { default?: unknown }).default ?? driver) as typeof BetterSqlite3;
      try {
        db = new Database(this.connection.path, { timeout: this.options.busyTimeoutMs ?? 5000 });
      } catch (error) {
        throw new TollgateError('store_unavailable', `sqliteStore could not open ${this.connection.path}: ${(error as Error).message}. Check that the directory exists and is writable.`, { cause: error });
      }
      db.pragma(`synchronous = ${this.options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    }
    try {
      if (!db.memory) {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (String(mode).toLowerCase() !== 'wal') throw new Error(`journal_mode is ${mode}, WAL could not be enabled`);
      }
      this.migrate(db);
    } catch (error) {
      if (this.owned) db.close();
      if (TollgateError.isInstance(error)) throw error;
      throw new TollgateError('store_unavailable', `sqliteStore could not prepare the database: ${(error as Error).message}`, { cause: error });
    }
    return db;
  }

  /** Applies missing schema versions; BEGIN IMMEDIATE makes concurrent starters take turns. */
  private migrate(db: Db): void {
    requireJsonb(String(db.prepare('SELECT sqlite_version()').pluck().get()));
    db.transaction(() => {
      db.exec(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
      const applied = new Set(db.prepare(`SELECT version FROM ${MIGRATIONS_TABLE}`).pluck().all() as number[]);
      const known = migrations[migrations.length - 1].version;
      const newest = Math.max(0, ...applied);
      if (newest > known) {
        throw new TollgateError('store_unavailable', `The database has Tollgate schema version ${newest}, newer than this @tollgate/core knows (${known}). Upgrade @tollgate/core in this service.`);
      }
      for (const m of migrations) {
        if (applied.has(m.version)) continue;
        for (const statement of m.statements) db.exec(statement);
        db.prepare(`INSERT INTO ${MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)`).run(m.version, m.name, Date.now());
      }
    }).immediate();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const db = this.db ?? (this.opening ? await this.opening.catch(() => null) : null);
    this.statements.clear();
    this.db = null;
    if (db && this.owned && db.open) db.close();
  }

  private stmt(db: Db, text: string): Stmt {
    let s = this.statements.get(text);
    if (!s) {
      if (this.statements.size >= STATEMENT_CACHE_MAX) this.statements.clear();
      s = db.prepare(text);
      this.statements.set(text, s);
    }
    return s;
  }

  private all<R>(db: Db, statement: Statement): R[] {
    return this.stmt(db, statement.text).all(named(statement.params)) as R[];
  }

  // ── definitions ───────────────────────────────────────────────────────────

  private async create<T extends { id: string }>(table: string, value: T, what: string): Promise<{ created: boolean; value: T }> {
    assertStorable({ id: value.id }, what, true);
    const db = await this.open();
    const info = this.stmt(db, `INSERT INTO ${table} (id, body) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`).run(value.id, JSON.stringify(value));
    if (info.changes > 0) return { created: true, value };
    return { created: false, value: (await this.get<T>(table, value.id))! };
  }

  private async get<T>(table: string, id: string): Promise<T | null> {
    if (!allStorable([id], true)) return null;
    const db = await this.open();
    const body = this.stmt(db, `SELECT body FROM ${table} WHERE id = ?`).pluck().get(id) as string | undefined;
    return body === undefined ? null : (JSON.parse(body) as T);
  }

  private async update<T extends { id: string }>(table: string, value: T): Promise<boolean> {
    if (!allStorable([value.id], true)) return false;
    const db = await this.open();
    return this.stmt(db, `UPDATE ${table} SET body = ? WHERE id = ?`).run(JSON.stringify(value), value.id).changes > 0;
  }

  private async remove(table: string, id: string): Promise<boolean> {
    if (!allStorable([id], true)) return false;
    const db = await this.open();
    return this.stmt(db, `DELETE FROM ${table} WHERE id = ?`).run(id).changes > 0;
  }

  private async page<T>(table: string, page: { limit: number; cursor?: string }): Promise<Page<T>> {
    const db = await this.open();
    const rows = (page.cursor === undefined
      ? this.stmt(db, `SELECT id, body FROM ${table} ORDER BY id LIMIT ?`).all(page.limit + 1)
      : this.stmt(db, `SELECT id, body FROM ${table} WHERE id > ? ORDER BY id LIMIT ?`).all(page.cursor, page.limit + 1)) as Array<{ id: string; body: string }>;
    const more = rows.length > page.limit;
    const data = (more ? rows.slice(0, page.limit) : rows).map((r) => JSON.parse(r.body) as T);
    return { data, nextCursor: more ? rows[page.limit - 1].id : null };
  }

  async createCustomer(customer: Customer) {
    const { created, value } = await this.create(T.customers, customer, 'customer');
    return { created, customer: value };
  }
  getCustomer(id: string) { return this.get<Customer>(T.customers, id); }
  updateCustomer(customer: Customer) { return this.update(T.customers, customer); }
  deleteCustomer(id: string) { return this.remove(T.customers, id); }
  listCustomers(page: { limit: number; cursor?: string }) { return this.page<Customer>(T.customers, page); }

  async createMeter(meter: Meter) {
    const { created, value } = await this.create(T.meters, meter, 'meter');
    return { created, meter: value };
  }
  getMeter(id: string) { return this.get<Meter>(T.meters, id); }
  updateMeter(meter: Meter) { return this.update(T.meters, meter); }
  deleteMeter(id: string) { return this.remove(T.meters, id); }
  listMeters(page: { limit: number; cursor?: string }) { return this.page<Meter>(T.meters, page); }

  async createLimit(limit: Limit) {
    const { created, value } = await this.create(T.limits, limit, 'limit');
    return { created, limit: value };
  }
  getLimit(id: string) { return this.get<Limit>(T.limits, id); }
  updateLimit(limit: Limit) { return this.update(T.limits, limit); }
  deleteLimit(id: string) { return this.remove(T.limits, id); }
  listLimits(page: { limit: number; cursor?: string }) { return this.page<Limit>(T.limits, page); }

  // ── ledger ────────────────────────────────────────────────────────────────

  async insertEvents(events: StoredEvent[]) {
    assertStorableEvents(events, true);
    const db = await this.open();
    return db.transaction(() => {
      const idempotency = this.idempotencyOf(db, events);
      const { records, fresh } = freshEvents(events, idempotency);
      this.writeEvents(db, fresh);
      return records;
    }).immediate();
  }

  private idempotencyOf(db: Db, events: StoredEvent[]): Map<string, string> {
    const found = new Map<string, string>();
    const lookup = this.stmt(db, `SELECT id FROM ${T.events} WHERE customer_id = ? AND idempotency_key = ?`).pluck();
    for (const { customerId, key } of idempotencyProbes(events)) {
      const id = lookup.get(customerId, key) as string | undefined;
      if (id !== undefined) found.set(idempotencyId(customerId, key), id);
    }
    return found;
  }

  private writeEvents(db: Db, events: StoredEvent[]): void {
    if (events.length === 0) return;
    const insert = this.stmt(db, `INSERT INTO ${T.events} (id, customer_id, event_type, timestamp_ms, event_values, dimensions, properties, idempotency_key) VALUES (?, ?, ?, ?, jsonb(?), jsonb(?), ?, ?)`);
    for (const e of events) {
      insert.run(e.id, e.customerId, e.eventType, e.timestamp, JSON.stringify(e.values), JSON.stringify(e.dimensions), e.properties === undefined ? null : JSON.stringify(e.properties), e.idempotencyKey ?? null);
    }
    const addKey = this.stmt(db, `INSERT INTO ${T.valueKeys} (key) VALUES (?) ON CONFLICT DO NOTHING`);
    for (const key of valueKeysOf(events)) addKey.run(key);
  }

  /** A query naming a string the store could never have stored matches nothing. */
  private static impossible(q: EventQuery): boolean {
    return !allStorable([q.customerId, q.eventType, ...Object.keys(q.dimensions ?? {}), ...Object.values(q.dimensions ?? {})], true);
  }

  async listEvents(query: EventQuery, limit: number, cursor?: EventCursor) {
    if (SqliteStore.impossible(query)) return [];
    const db = await this.open();
    return this.all<EventRow>(db, listEventsStatement(dialect, query, limit, cursor)).map(eventFromRow);
  }

  private totals(db: Db, query: EventQuery, grouping: Grouping): Map<string | number | null, ValueTotals> {
    const keys = this.stmt(db, `SELECT key FROM ${T.valueKeys} ORDER BY key`).pluck().all() as string[];
    if (keys.length > MAX_VALUE_COLUMNS) {
      return totalsFromKeyRows(this.all(db, totalsByKeyStatement(dialect, query, grouping)));
    }
    return totalsFromColumns(this.all<TotalsRow>(db, totalsStatement(dialect, query, grouping, keys)), keys);
  }

  async summarize(query: EventQuery) {
    if (SqliteStore.impossible(query)) return { totalEvents: 0, values: {} };
    const db = await this.open();
    return db.transaction(() => this.totals(db, query, { kind: 'none' }).get(null) ?? { totalEvents: 0, values: {} })();
  }

  async breakdown(query: EventQuery, groupBy: string) {
    if (SqliteStore.impossible(query)) return [];
    const db = await this.open();
    const groups = db.transaction(() => this.totals(db, query, { kind: 'field', groupBy }))();
    return [...groups].map(([dimension, totals]) => ({ dimension: dimension === null ? null : String(dimension), ...totals }));
  }

  async timeseries(query: EventQuery, boundaries: number[]) {
    const buckets = boundaries.slice(1).map(() => ({ totalEvents: 0, values: {} }) as ValueTotals);
    if (buckets.length === 0 || SqliteStore.impossible(query)) return buckets;
    const db = await this.open();
    const groups = db.transaction(() => this.totals(db, query, { kind: 'buckets', boundaries }))();
    for (const [i, totals] of groups) buckets[Number(i)] = totals;
    return buckets;
  }

  async meterState(source: MeterSource) {
    const db = await this.open();
    return this.stateOfSource(db, source);
  }

  async seedState(source: MeterSource, recentSince: number): Promise<SeedState> {
    const db = await this.open();
    return db.transaction(() => {
      const state = this.stateOfSource(db, source);
      if (!SqliteStore.possible(source)) return { state, recentEventIds: [] };
      const recentEventIds = this.all<{ id: string }>(db, recentEventIdsStatement(dialect, source, recentSince)).map((r) => r.id);
      const distinct = distinctValuesStatement(dialect, source);
      if (!distinct) return { state, recentEventIds };
      return { state, distinctValues: this.all<{ value: string }>(db, distinct).map((r) => String(r.value)), recentEventIds };
    })();
  }

  private static possible(source: MeterSource): boolean {
    return allStorable([source.customerId, source.eventFilter?.eventType, ...Object.entries(source.eventFilter?.dimensions ?? {}).flat(), ...Object.entries(source.dimensionFilters ?? {}).flat()], true);
  }

  private stateOfSource(db: Db, source: MeterSource): SlotState {
    if (!SqliteStore.possible(source)) return emptyState();
    const [row] = this.all<MeterStateRow>(db, meterStateStatement(dialect, source));
    return stateFromRow(source.field, source.aggregation, row);
  }

  // ── counters ──────────────────────────────────────────────────────────────

  async apply(op: CounterOperation): Promise<CounterResult> {
    const db = await this.open();
    if (op.type !== 'check' && ++this.writes % SWEEP_EVERY === 0) db.transaction(() => this.sweep(db, op.now)).immediate();
    if (op.type === 'release') {
      this.stmt(db, `DELETE FROM ${T.holds} WHERE hold_id = ?`).run(op.holdId);
      return { allowed: true, slots: [] };
    }
    if (op.type === 'record' && op.persist) assertStorableEvents(op.items.map((i) => i.event), true);
    assertStorableSlots(op, true);
    if (op.type === 'check') {
      // A read transaction: one snapshot, no write lock. Only a slot never seen needs writing.
      const read = db.transaction(() => this.load(db, op, false));
      const slots = read.deferred();
      if (slots) return planOperation(op, slots).result;
    }
    return db.transaction(() => this.applyWrite(db, op)).immediate();
  }

  private applyWrite(db: Db, op: Exclude<CounterOperation, { type: 'release' }>): CounterResult {
    if (op.type === 'seed') {
      this.seed(db, op);
      return { allowed: true, slots: [] };
    }
    const slots = this.load(db, op, true)!;
    const idempotency = op.type === 'record' && op.persist ? this.idempotencyOf(db, op.items.map((i) => i.event)) : new Map<string, string>();
    const { result, writes } = planOperation(op, slots, idempotency);
    if (op.type !== 'check') this.write(db, op, writes);
    return result;
  }

  /**
   * Reads every slot the operation names. A slot with no row is rebuilt from the ledger when
   * `build` is set (inside a write transaction); otherwise the answer is null.
   */
  private load(db: Db, op: CounterOperation, build: boolean): Map<string, LoadedSlot> | null {
    const row = this.stmt(db, `SELECT event_count, value_sum, value_min, value_max, latest_value, latest_at, distinct_count FROM ${T.counters} WHERE key = ?`);
    const holds = this.stmt(db, `SELECT hold_id, amount FROM ${T.holds} WHERE slot_key = ? AND expires_at > ? ORDER BY seq`).raw();
    const fired = this.stmt(db, `SELECT threshold FROM ${T.alerts} WHERE slot_key = ?`).pluck();
    const out = new Map<string, LoadedSlot>();
    for (const slot of slotsOf(op)) {
      const r = row.get(slot.key) as CounterRow | undefined;
      let loaded: LoadedSlot;
      if (r) {
        loaded = {
          state: stateOf(r),
          holds: new Map(holds.all(slot.key, op.now) as Array<[string, number]>),
          fired: new Set(op.type === 'record' ? (fired.all(slot.key) as number[]) : []),
          values: new Set(),
          applied: new Set(),
        };
      } else if (build) {
        loaded = this.rebuild(db, slot, op.now);
      } else {
        return null;
      }
      out.set(slot.key, loaded);
    }
    const member = this.stmt(db, `SELECT 1 FROM ${T.values} WHERE slot_key = ? AND value = ?`).pluck();
    for (const { key, value } of valueProbes(op)) if (member.get(key, value) !== undefined) out.get(key)!.values.add(value);
    const counted = this.stmt(db, `SELECT 1 FROM ${T.applied} WHERE slot_key = ? AND event_id = ?`).pluck();
    for (const { key, eventId } of appliedProbes(op)) if (counted.get(key, eventId) !== undefined) out.get(key)!.applied.add(eventId);
    return out;
  }

  /** Builds a slot the counters have never seen from the ledger and stores it. */
  private rebuild(db: Db, slot: CounterSlot, now: number): LoadedSlot {
    const state = this.stateOfSource(db, slot.source);
    const distinct = distinctValuesStatement(dialect, slot.source);
    if (distinct) {
      this.stmt(db, `INSERT INTO ${T.values} (slot_key, value) SELECT @key, value FROM (${distinct.text}) WHERE true ON CONFLICT DO NOTHING`).run({ ...named(distinct.params), key: slot.key });
    }
    this.upsertCounter(db, slot, state);
    const fired = rebuiltFired(slot, state);
    const alert = this.stmt(db, `INSERT INTO ${T.alerts} (slot_key, threshold) VALUES (?, ?) ON CONFLICT DO NOTHING`);
    for (const t of fired) alert.run(slot.key, t);
    return { state, holds: new Map(), fired: new Set(fired), values: new Set(), applied: new Set() };
  }

  private upsertCounter(db: Db, slot: CounterSlot, s: SlotState): void {
    this.stmt(
      db,
      `INSERT INTO ${T.counters} (key, limit_id, customer_id, window_start, window_end, event_count, value_sum, value_min, value_max, latest_value, latest_at, distinct_count)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET event_count = excluded.event_count, value_sum = excluded.value_sum, value_min = excluded.value_min,
         value_max = excluded.value_max, latest_value = excluded.latest_value, latest_at = excluded.latest_at, distinct_count = excluded.distinct_count`,
    ).run(slot.key, slot.limitId, slot.customerId, slot.windowStart, slot.windowEnd, s.count, s.sum, s.min, s.max, s.latest, s.latestAt, s.distinct);
  }

  private write(db: Db, op: CounterOperation, w: CounterWrites): void {
    const expired = this.stmt(db, `DELETE FROM ${T.holds} WHERE slot_key = ? AND expires_at <= ?`);
    for (const slot of slotsOf(op)) expired.run(slot.key, op.now);
    const drop = this.stmt(db, `DELETE FROM ${T.holds} WHERE hold_id = ?`);
    for (const id of new Set(w.droppedHolds)) drop.run(id);
    const hold = this.stmt(db, `INSERT INTO ${T.holds} (hold_id, slot_key, amount, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (hold_id, slot_key) DO UPDATE SET amount = excluded.amount, expires_at = excluded.expires_at`);
    for (const h of w.holds) hold.run(h.holdId, h.key, h.amount, h.expiresAt);
    for (const { slot, state } of w.counters.values()) this.upsertCounter(db, slot, state);
    const value = this.stmt(db, `INSERT INTO ${T.values} (slot_key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`);
    for (const v of w.values) value.run(v.key, v.value);
    const alert = this.stmt(db, `INSERT INTO ${T.alerts} (slot_key, threshold) VALUES (?, ?) ON CONFLICT DO NOTHING`);
    for (const a of w.alerts) alert.run(a.key, a.threshold);
    const applied = this.stmt(db, `INSERT INTO ${T.applied} (slot_key, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING`);
    for (const a of w.applied) applied.run(a.key, a.eventId);
    this.writeEvents(db, w.events);
  }

  private seed(db: Db, op: Extract<CounterOperation, { type: 'seed' }>): void {
    const exists = this.stmt(db, `SELECT 1 FROM ${T.counters} WHERE key = ?`).pluck();
    const value = this.stmt(db, `INSERT INTO ${T.values} (slot_key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`);
    for (const { slot, state, distinctValues } of op.seeds) {
      if (exists.get(slot.key) !== undefined) continue;
      this.upsertCounter(db, slot, state);
      if (slot.aggregation === 'unique') for (const v of distinctValues ?? []) value.run(slot.key, v);
    }
  }

  /** Forgets ended windows without open holds (rebuilt from the ledger if an event lands there later) and lapsed holds. */
  private sweep(db: Db, now: number): void {
    this.stmt(db, `DELETE FROM ${T.holds} WHERE expires_at <= ?`).run(now);
    const keys = this.stmt(db, `SELECT key FROM ${T.counters} c WHERE window_end IS NOT NULL AND window_end <= ? AND NOT EXISTS (SELECT 1 FROM ${T.holds} h WHERE h.slot_key = c.key) LIMIT 10000`).pluck().all(now) as string[];
    for (const table of [T.counters, T.alerts, T.values, T.applied]) {
      const del = this.stmt(db, `DELETE FROM ${table} WHERE ${table === T.counters ? 'key' : 'slot_key'} = ?`);
      for (const key of keys) del.run(key);
    }
  }
}

