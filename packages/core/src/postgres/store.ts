import { createHash } from 'node:crypto';
import type pg from 'pg';
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
  customersOf,
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
import { LOCK_BUCKETS, migrationsFor, tablesIn, type Tables } from './schema.js';

/** The parts of a `pg.PoolClient` the store uses. */
export interface PostgresClient {
  query(config: { text: string; values?: unknown[]; name?: string }): Promise<{ rows: unknown[]; rowCount: number | null }>;
  query(text: string, values?: unknown[]): Promise<unknown>;
  release(error?: Error | boolean): void;
}

/**
 * The parts of a `pg.Pool` the store uses. Declared here so that the types of
 * `@tollgate/core/postgres` do not require `@types/pg`; pass the real pool.
 */
export interface PostgresPool {
  connect(): Promise<PostgresClient>;
  query(config: { text: string; values?: unknown[]; name?: string }): Promise<{ rows: unknown[]; rowCount: number | null }>;
  end(): Promise<void>;
}

export type PostgresConnection =
  /** A `postgres://` URL; the store opens a pool of 10 connections and ends it on `close()`. */
  | { connectionString: string }
  /** An existing `pg.Pool`; the store never ends it. */
  | { pool: PostgresPool };

export interface PostgresStoreOptions {
  /**
   * The schema that holds Tollgate's tables, created when missing. Give Tollgate a schema of
   * its own: the tables have plain names such as `events` and `customers`. Default `'tollgate'`.
   * @example postgresStore({ connectionString }, { schema: 'billing_usage' })
   */
  schema?: string;
}

const SCHEMA_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** First key of the migration advisory lock ("Toll"); the second is the schema's hash. */
const MIGRATION_LOCK = 0x546f6c6c;
/** Write operations between two sweeps of ended windows and lapsed holds. */
const SWEEP_EVERY = 8192;

type Row = Record<string, unknown>;

/** FNV-1a over UTF-16 code units: stable across processes and versions, which lock order relies on. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function dialectFor(t: Tables): Dialect {
  return {
    events: t.events,
    param(params, value) {
      params.push(value);
      return `$${params.length}`;
    },
    dimension(key, params) {
      return `(dimensions ->> ${this.param(params, key)})`;
    },
    value(key, params) {
      return `(event_values ->> ${this.param(params, key)})`;
    },
    dimensionsMatch(filter, params) {
      return `dimensions @> ${this.param(params, JSON.stringify(filter))}::jsonb`;
    },
    float: (expr) => `(${expr})::double precision`,
    buckets(boundaries, params) {
      return {
        from: t.events,
        group: `width_bucket(timestamp_ms, ${this.param(params, boundaries)}::bigint[]) - 1`,
        where: [`timestamp_ms >= ${this.param(params, boundaries[0])}`, `timestamp_ms < ${this.param(params, boundaries[boundaries.length - 1])}`],
      };
    },
    readJson: (column) => column,
    expandValues: () => ({ join: 'CROSS JOIN LATERAL jsonb_each_text(event_values) AS x(key, value)', key: 'x.key', value: 'x.value' }),
  };
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/**
 * A PostgreSQL store (pg 8): ledger and counters in one database, shared by every process and
 * machine that connects to it. Each counters operation is one transaction that first locks its
 * customers' rows in a fixed order, so N callers racing for the last unit get exactly as many
 * successes as fit, and concurrent batches never deadlock. A check whose slots exist is one
 * read-only query.
 *
 * @example
 * import { postgresStore } from '@tollgate/core/postgres';
 * const tollgate = createTollgate({ store: postgresStore({ connectionString: process.env.DATABASE_URL! }) });
 */
export function postgresStore(connection: PostgresConnection, options: PostgresStoreOptions = {}): Store {
  return new PostgresStore(connection, options);
}

class PostgresStore implements Store {
  readonly capabilities: StoreCapabilities = {
    contract: STORE_CONTRACT_VERSION,
    ledger: true,
    counters: true,
    shared: true,
    durable: true,
  };

  private readonly schema: string;
  private readonly t: Tables;
  private readonly d: Dialect;
  private readonly owned: boolean;
  private pool: PostgresPool | null = null;
  private opening: Promise<PostgresPool> | null = null;
  private closed = false;
  private writes = 0;
  private sweeping: Promise<void> | null = null;
  private readonly names = new Map<string, string>();

  constructor(
    private readonly connection: PostgresConnection,
    options: PostgresStoreOptions,
  ) {
    const c = connection as Partial<{ connectionString: unknown; pool: { connect?: unknown } }>;
    if (c && typeof c.connectionString === 'string' && c.connectionString.length > 0) this.owned = true;
    else if (c && c.pool && typeof c.pool.connect === 'function') this.owned = false;
    else {
      throw new TollgateError('invalid_request', 'postgresStore needs { connectionString: "postgres://..." } or { pool } (a pg.Pool).', {
        issues: [{ path: 'connection', message: 'expected { connectionString } or { pool }' }],
      });
    }
    this.schema = options.schema ?? 'tollgate';
    if (!SCHEMA_PATTERN.test(this.schema)) {
      throw new TollgateError('invalid_request', `Invalid postgresStore schema "${this.schema}": use letters, digits and underscores, starting with a letter or underscore (at most 63).`, {
        issues: [{ path: 'schema', message: 'must match [A-Za-z_][A-Za-z0-9_]{0,62}' }],
      });
    }
    this.t = tablesIn(this.schema);
    this.d = dialectFor(this.t);
  }

  // ── set-up ─────────────────────────────────────────────────────────────────

  init(): Promise<void> {
    return this.open().then(() => undefined);
  }

  private open(): Promise<PostgresPool> {
    if (this.pool) return Promise.resolve(this.pool);
    if (this.closed) return Promise.reject(new TollgateError('store_unavailable', 'This postgresStore was closed. Create a new store to use the database again.'));
    this.opening ??= this.connect().then(
      (pool) => (this.pool = pool),
      (error) => {
        this.opening = null;
        throw error;
      },
    );
    return this.opening;
  }

  private async connect(): Promise<PostgresPool> {
    let pool: PostgresPool;
    if ('pool' in this.connection) pool = this.connection.pool;
    else {
      const driver = await loadDriver(() => import('pg'), 'pg', 'npm i pg', 'postgresStore', 'a pg.Pool as { pool }');
      const { Pool } = ((driver as { default?: unknown }).default ?? driver) as typeof pg;
      const owned = new Pool({ connectionString: this.connection.connectionString, max: 10 });
      // An idle connection dropped by the server must not crash the process; the next query reconnects.
      owned.on('error', () => {});
      pool = owned as unknown as PostgresPool;
    }
    try {
      await this.migrate(pool);
    } catch (error) {
      if (this.owned) await pool.end().catch(() => {});
      if (TollgateError.isInstance(error)) throw error;
      throw new TollgateError('store_unavailable', `postgresStore could not prepare schema "${this.schema}": ${(error as Error).message}. Check the connection and that the role may create tables.`, { cause: error });
    }
    return pool;
  }

  /** Applies missing schema versions; an advisory lock makes concurrent starters take turns. */
  private async migrate(pool: PostgresPool): Promise<void> {
    await this.transaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [MIGRATION_LOCK, fnv1a(this.schema) | 0]);
      const exists = (await client.query({ text: 'SELECT 1 FROM pg_namespace WHERE nspname = $1', values: [this.schema] })).rowCount;
      if (!exists) await client.query(`CREATE SCHEMA ${this.t.schema}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.t.migrations} (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`);
      const applied = new Set((await client.query({ text: `SELECT version FROM ${this.t.migrations}` })).rows.map((r) => (r as { version: number }).version));
      const all = migrationsFor(this.t);
      const known = all[all.length - 1].version;
      const newest = Math.max(0, ...applied);
      if (newest > known) {
        throw new TollgateError('store_unavailable', `Schema "${this.schema}" has Tollgate schema version ${newest}, newer than this @tollgate/core knows (${known}). Upgrade @tollgate/core in this service.`);
      }
      for (const m of all) {
        if (applied.has(m.version)) continue;
        for (const statement of m.statements) await client.query(statement);
        await client.query({ text: `INSERT INTO ${this.t.migrations} (version, name, applied_at) VALUES ($1, $2, $3)`, values: [m.version, m.name, Date.now()] });
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sweeping;
    const pool = this.pool ?? (this.opening ? await this.opening.catch(() => null) : null);
    this.pool = null;
    if (pool && this.owned) await pool.end();
  }

  /**
   * A named prepared statement for fixed SQL, so Postgres plans it once per connection. The
   * name hashes the text: stores on other schemas get other names.
   */
  private prepared(text: string, values: unknown[]): { text: string; values: unknown[]; name: string } {
    let name = this.names.get(text);
    if (!name) {
      name = `tollgate_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
      this.names.set(text, name);
    }
    return { text, values, name };
  }

  private async query<R = Row>(statement: Statement | { text: string; values: unknown[]; name?: string }): Promise<R[]> {
    const pool = await this.open();
    const config = 'params' in statement ? { text: statement.text, values: statement.params } : statement;
    return (await pool.query(config)).rows as R[];
  }

  private async transaction<R>(pool: PostgresPool, body: (client: PostgresClient) => Promise<R>, begin = 'BEGIN'): Promise<R> {
    const client = await pool.connect();
    try {
      await client.query(begin);
      const result = await body(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
        client.release();
      } catch {
        client.release(true);
      }
      throw error;
    }
  }

  /**
   * BEGIN plus the lock rows of these customers, in one round trip. The bucket numbers are
   * integers computed here, so inlining them is safe; customer ids never reach the SQL text.
   */
  private lockStatement(customers: string[]): string {
    if (customers.length === 0) return 'BEGIN';
    const buckets = [...new Set(customers.map((c) => fnv1a(c) % LOCK_BUCKETS))].sort((a, b) => a - b);
    return `BEGIN; SELECT 1 FROM ${this.t.locks} WHERE bucket IN (${buckets.join(',')}) ORDER BY bucket FOR UPDATE`;
  }

  // ── definitions ───────────────────────────────────────────────────────────

  private async create<T extends { id: string }>(table: string, value: T, what: string): Promise<{ created: boolean; value: T }> {
    assertStorable({ id: value.id }, what, false);
    // One statement that always returns the row: inserted (xmax = 0), or the one already there.
    // A no-op update locks and returns the existing row even when it was committed after this
    // statement began, which ON CONFLICT DO NOTHING plus a second SELECT would not see.
    const rows = await this.query<{ created: boolean; body: T }>(this.prepared(
      `INSERT INTO ${table} AS t (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = t.body RETURNING (xmax = 0) AS created, body`,
      [value.id, JSON.stringify(value)],
    ));
    return rows[0].created ? { created: true, value } : { created: false, value: rows[0].body };
  }

  private async get<T>(table: string, id: string): Promise<T | null> {
    if (!allStorable([id], false)) return null;
    const rows = await this.query<{ body: T }>(this.prepared(`SELECT body FROM ${table} WHERE id = $1`, [id]));
    return rows.length ? rows[0].body : null;
  }

  private async update<T extends { id: string }>(table: string, value: T): Promise<boolean> {
    if (!allStorable([value.id], false)) return false;
    const rows = await this.query(this.prepared(`UPDATE ${table} SET body = $2 WHERE id = $1 RETURNING id`, [value.id, JSON.stringify(value)]));
    return rows.length > 0;
  }

  private async remove(table: string, id: string): Promise<boolean> {
    if (!allStorable([id], false)) return false;
    const rows = await this.query(this.prepared(`DELETE FROM ${table} WHERE id = $1 RETURNING id`, [id]));
    return rows.length > 0;
  }

  private async page<T>(table: string, page: { limit: number; cursor?: string }): Promise<Page<T>> {
    const rows = page.cursor === undefined
      ? await this.query<{ id: string; body: T }>(this.prepared(`SELECT id, body FROM ${table} ORDER BY id LIMIT $1`, [page.limit + 1]))
      : await this.query<{ id: string; body: T }>(this.prepared(`SELECT id, body FROM ${table} WHERE id > $1 ORDER BY id LIMIT $2`, [page.cursor, page.limit + 1]));
    const more = rows.length > page.limit;
    const data = (more ? rows.slice(0, page.limit) : rows).map((r) => r.body);
    return { data, nextCursor: more ? rows[page.limit - 1].id : null };
  }

  async createCustomer(customer: Customer) {
    const { created, value } = await this.create(this.t.customers, customer, 'customer');
    return { created, customer: value };
  }
  getCustomer(id: string) { return this.get<Customer>(this.t.customers, id); }
  updateCustomer(customer: Customer) { return this.update(this.t.customers, customer); }
  deleteCustomer(id: string) { return this.remove(this.t.customers, id); }
  listCustomers(page: { limit: number; cursor?: string }) { return this.page<Customer>(this.t.customers, page); }

  async createMeter(meter: Meter) {
    const { created, value } = await this.create(this.t.meters, meter, 'meter');
    return { created, meter: value };
  }
  getMeter(id: string) { return this.get<Meter>(this.t.meters, id); }
  updateMeter(meter: Meter) { return this.update(this.t.meters, meter); }
  deleteMeter(id: string) { return this.remove(this.t.meters, id); }
  listMeters(page: { limit: number; cursor?: string }) { return this.page<Meter>(this.t.meters, page); }

  async createLimit(limit: Limit) {
    const { created, value } = await this.create(this.t.limits, limit, 'limit');
    return { created, limit: value };
  }
  getLimit(id: string) { return this.get<Limit>(this.t.limits, id); }
  updateLimit(limit: Limit) { return this.update(this.t.limits, limit); }
  deleteLimit(id: string) { return this.remove(this.t.limits, id); }
  listLimits(page: { limit: number; cursor?: string }) { return this.page<Limit>(this.t.limits, page); }

  // ── ledger ────────────────────────────────────────────────────────────────

  async insertEvents(events: StoredEvent[]) {
    assertStorableEvents(events, false);
    const pool = await this.open();
    const customers = [...new Set(events.filter((e) => e.idempotencyKey !== undefined).map((e) => e.customerId))].sort();
    return this.transaction(pool, async (client) => {
      const { idempotency } = await this.load(client, null, events);
      const { records, fresh } = freshEvents(events, idempotency);
      const writes: CounterWrites = { counters: new Map(), holds: [], droppedHolds: [], values: [], alerts: [], applied: [], events: fresh };
      await this.write(client, [], 0, writes);
      return records;
    }, this.lockStatement(customers));
  }

  /** A query naming a string the store could never have stored matches nothing. */
  private static impossible(q: EventQuery): boolean {
    return !allStorable([q.customerId, q.eventType, ...Object.keys(q.dimensions ?? {}), ...Object.values(q.dimensions ?? {})], false);
  }

  async listEvents(query: EventQuery, limit: number, cursor?: EventCursor) {
    if (PostgresStore.impossible(query)) return [];
    return (await this.query<EventRow>(listEventsStatement(this.d, query, limit, cursor))).map(eventFromRow);
  }

  private async totals(query: EventQuery, grouping: Grouping): Promise<Map<string | number | null, ValueTotals>> {
    const keys = (await this.query<{ key: string }>(this.prepared(`SELECT key FROM ${this.t.valueKeys} ORDER BY key`, []))).map((r) => r.key);
    if (keys.length > MAX_VALUE_COLUMNS) return totalsFromKeyRows(await this.query(totalsByKeyStatement(this.d, query, grouping)));
    return totalsFromColumns(await this.query<TotalsRow>(totalsStatement(this.d, query, grouping, keys)), keys);
  }

  async summarize(query: EventQuery) {
    if (PostgresStore.impossible(query)) return { totalEvents: 0, values: {} };
    return (await this.totals(query, { kind: 'none' })).get(null) ?? { totalEvents: 0, values: {} };
  }

  async breakdown(query: EventQuery, groupBy: string) {
    if (PostgresStore.impossible(query) || !allStorable([groupBy], false)) return [];
    const groups = await this.totals(query, { kind: 'field', groupBy });
    return [...groups].map(([dimension, totals]) => ({ dimension: dimension === null ? null : String(dimension), ...totals }));
  }

  async timeseries(query: EventQuery, boundaries: number[]) {
    const buckets = boundaries.slice(1).map(() => ({ totalEvents: 0, values: {} }) as ValueTotals);
    if (buckets.length === 0 || PostgresStore.impossible(query)) return buckets;
    for (const [i, totals] of await this.totals(query, { kind: 'buckets', boundaries })) buckets[Number(i)] = totals;
    return buckets;
  }

  async meterState(source: MeterSource): Promise<SlotState> {
    const pool = await this.open();
    return this.stateOfSource(pool, source);
  }

  /** State, distinct values and recent event ids from one snapshot, for seeding a counters-only store. */
  async seedState(source: MeterSource, recentSince: number): Promise<SeedState> {
    const pool = await this.open();
    return this.transaction(pool, async (client) => {
      const state = await this.stateOfSource(client, source);
      if (!PostgresStore.possible(source)) return { state, recentEventIds: [] };
      const recent = recentEventIdsStatement(this.d, source, recentSince);
      const recentEventIds = (await client.query({ text: recent.text, values: recent.params })).rows.map((r) => (r as { id: string }).id);
      const distinct = distinctValuesStatement(this.d, source);
      if (!distinct) return { state, recentEventIds };
      const values = (await client.query({ text: distinct.text, values: distinct.params })).rows.map((r) => String((r as { value: unknown }).value));
      return { state, distinctValues: values, recentEventIds };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  private static possible(source: MeterSource): boolean {
    return allStorable([source.customerId, source.eventFilter?.eventType, ...Object.entries(source.eventFilter?.dimensions ?? {}).flat(), ...Object.entries(source.dimensionFilters ?? {}).flat()], false);
  }

  private async stateOfSource(client: Pick<PostgresPool, 'query'>, source: MeterSource): Promise<SlotState> {
    if (!PostgresStore.possible(source)) return emptyState();
    const statement = meterStateStatement(this.d, source);
    const { rows } = await client.query({ text: statement.text, values: statement.params });
    return stateFromRow(source.field, source.aggregation, rows[0] as MeterStateRow);
  }

  // ── counters ──────────────────────────────────────────────────────────────

  async apply(op: CounterOperation): Promise<CounterResult> {
    const pool = await this.open();
    if (op.type !== 'check' && ++this.writes % SWEEP_EVERY === 0 && !this.sweeping) {
      this.sweeping = this.sweep(pool, op.now).catch(() => {}).finally(() => { this.sweeping = null; });
    }
    if (op.type === 'release') {
      await pool.query(this.prepared(`DELETE FROM ${this.t.holds} WHERE hold_id = $1`, [op.holdId]));
      return { allowed: true, slots: [] };
    }
    if (op.type === 'record' && op.persist) assertStorableEvents(op.items.map((i) => i.event), false);
    assertStorableSlots(op, false);
    if (op.type === 'check') {
      // One read-only statement: a consistent snapshot without locks. Only a slot never seen needs writing.
      const { slots, missing } = await this.load(pool, op, []);
      if (missing.length === 0) return planOperation(op, slots).result;
    }
    const events = op.type === 'record' && op.persist ? op.items.map((i) => i.event) : [];
    const result = await this.transaction(pool, async (client) => {
      if (op.type === 'seed') {
        await this.seed(client, op);
        return { allowed: true, slots: [] };
      }
      let loaded = await this.load(client, op, events);
      if (loaded.missing.length > 0) {
        for (const slot of loaded.missing) await this.rebuild(client, slot, op.now);
        loaded = await this.load(client, op, events);
      }
      const { result, writes } = planOperation(op, loaded.slots, loaded.idempotency);
      if (op.type !== 'check') await this.write(client, slotsOf(op).map((s) => s.key), op.now, writes);
      return result;
    }, this.lockStatement(customersOf(op)));
    return result;
  }

  /**
   * Reads every slot an operation names with its holds, fired thresholds and the membership of
   * its `unique` values and event ids, plus the idempotency keys of `events`: one statement.
   */
  private async load(client: Pick<PostgresPool, 'query'>, op: CounterOperation | null, events: StoredEvent[]): Promise<{ slots: Map<string, LoadedSlot>; missing: CounterSlot[]; idempotency: Map<string, string> }> {
    const t = this.t;
    const wanted = op ? slotsOf(op) : [];
    const values = op ? valueProbes(op) : [];
    const applied = op ? appliedProbes(op) : [];
    const keys = idempotencyProbes(events);
    // Only the parts this operation needs, each driven by its (small) list of keys so every lookup
    // is an index probe whatever plan Postgres caches for the prepared statement.
    const parts = [
      `(SELECT coalesce(json_agg(json_build_array(c.key, c.event_count, c.value_sum, c.value_min, c.value_max, c.latest_value, c.latest_at, c.distinct_count,
          (SELECT coalesce(json_agg(json_build_array(h.hold_id, h.amount) ORDER BY h.seq), '[]'::json) FROM ${t.holds} h WHERE h.slot_key = c.key AND h.expires_at > $2),
          ${op?.type === 'record' ? `(SELECT coalesce(json_agg(a.threshold), '[]'::json) FROM ${t.alerts} a WHERE a.slot_key = c.key)` : `'[]'::json`})), '[]'::json)
        FROM unnest($1::text[]) AS q(key) CROSS JOIN LATERAL (SELECT * FROM ${t.counters} c WHERE c.key = q.key) AS c) AS slots`,
    ];
    const params: unknown[] = [wanted.map((s) => s.key), op?.now ?? 0];
    if (values.length > 0) {
      parts.push(`(SELECT coalesce(json_agg(json_build_array(q.k, q.v)), '[]'::json) FROM unnest($${params.length + 1}::text[], $${params.length + 2}::text[]) AS q(k, v)
        WHERE EXISTS (SELECT 1 FROM ${t.values} v WHERE v.slot_key = q.k AND v.value = q.v)) AS seen`);
      params.push(values.map((v) => v.key), values.map((v) => v.value));
    }
    if (applied.length > 0) {
      parts.push(`(SELECT coalesce(json_agg(json_build_array(q.k, q.e)), '[]'::json) FROM unnest($${params.length + 1}::text[], $${params.length + 2}::text[]) AS q(k, e)
        WHERE EXISTS (SELECT 1 FROM ${t.applied} a WHERE a.slot_key = q.k AND a.event_id = q.e)) AS applied`);
      params.push(applied.map((a) => a.key), applied.map((a) => a.eventId));
    }
    if (keys.length > 0) {
      parts.push(`(SELECT coalesce(json_agg(json_build_array(q.c, q.k, e.id)), '[]'::json) FROM unnest($${params.length + 1}::text[], $${params.length + 2}::text[]) AS q(c, k)
        CROSS JOIN LATERAL (SELECT id FROM ${t.events} e WHERE e.customer_id = q.c AND e.idempotency_key = q.k AND e.idempotency_key IS NOT NULL) AS e) AS idempotency`);
      params.push(keys.map((k) => k.customerId), keys.map((k) => k.key));
    }
    const { rows } = await client.query(this.prepared(`SELECT ${parts.join(',\n')}`, params));
    const row = rows[0] as { slots: unknown[][]; seen?: string[][]; applied?: string[][]; idempotency?: string[][] };
    const slots = new Map<string, LoadedSlot>();
    for (const [key, count, sum, min, max, latest, latestAt, distinct, holds, fired] of row.slots) {
      slots.set(key as string, {
        state: { count: Number(count), sum: Number(sum), min: num(min), max: num(max), latest: num(latest), latestAt: num(latestAt), distinct: Number(distinct) },
        holds: new Map((holds as Array<[string, number]>).map(([id, amount]) => [id, Number(amount)])),
        fired: new Set((fired as number[]).map(Number)),
        values: new Set(),
        applied: new Set(),
      });
    }
    for (const [key, value] of row.seen ?? []) slots.get(key)?.values.add(value);
    for (const [key, eventId] of row.applied ?? []) slots.get(key)?.applied.add(eventId);
    const idempotency = new Map<string, string>();
    for (const [customerId, key, id] of row.idempotency ?? []) idempotency.set(idempotencyId(customerId, key), id);
    return { slots, missing: wanted.filter((s) => !slots.has(s.key)), idempotency };
  }

  /** Builds a slot the counters have never seen from the ledger; the customer's lock is held. */
  private async rebuild(client: PostgresClient, slot: CounterSlot, now: number): Promise<void> {
    const state = await this.stateOfSource(client, slot.source);
    const distinct = distinctValuesStatement(this.d, slot.source);
    if (distinct) {
      const n = distinct.params.length;
      await client.query({
        text: `INSERT INTO ${this.t.values} (slot_key, value) SELECT $${n + 1}, value FROM (${distinct.text}) AS d ON CONFLICT DO NOTHING`,
        values: [...distinct.params, slot.key],
      });
    }
    const fired = rebuiltFired(slot, state);
    await this.write(client, [], now, {
      counters: new Map([[slot.key, { slot, state }]]),
      holds: [],
      droppedHolds: [],
      values: [],
      alerts: fired.map((threshold) => ({ key: slot.key, threshold })),
      applied: [],
      events: [],
    });
  }

  /** Everything an operation changes, in one statement of data-modifying CTEs. */
  private async write(client: PostgresClient, touched: string[], now: number, w: CounterWrites): Promise<void> {
    const t = this.t;
    const counters = [...w.counters.values()];
    const events = w.events;
    await client.query(this.prepared(
      `WITH
        expired AS (DELETE FROM ${t.holds} WHERE slot_key = ANY($1::text[]) AND expires_at <= $2),
        dropped AS (DELETE FROM ${t.holds} WHERE hold_id = ANY($3::text[])),
        held AS (INSERT INTO ${t.holds} (hold_id, slot_key, amount, expires_at)
          SELECT * FROM unnest($4::text[], $5::text[], $6::double precision[], $7::bigint[])
          ON CONFLICT (hold_id, slot_key) DO UPDATE SET amount = EXCLUDED.amount, expires_at = EXCLUDED.expires_at),
        counted AS (INSERT INTO ${t.counters} (key, limit_id, customer_id, window_start, window_end, event_count, value_sum, value_min, value_max, latest_value, latest_at, distinct_count)
          SELECT * FROM unnest($8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::double precision[], $15::double precision[], $16::double precision[], $17::double precision[], $18::bigint[], $19::bigint[])
          ON CONFLICT (key) DO UPDATE SET event_count = EXCLUDED.event_count, value_sum = EXCLUDED.value_sum, value_min = EXCLUDED.value_min,
            value_max = EXCLUDED.value_max, latest_value = EXCLUDED.latest_value, latest_at = EXCLUDED.latest_at, distinct_count = EXCLUDED.distinct_count),
        valued AS (INSERT INTO ${t.values} (slot_key, value) SELECT * FROM unnest($20::text[], $21::text[]) ON CONFLICT DO NOTHING),
        alerted AS (INSERT INTO ${t.alerts} (slot_key, threshold) SELECT * FROM unnest($22::text[], $23::double precision[]) ON CONFLICT DO NOTHING),
        counted_events AS (INSERT INTO ${t.applied} (slot_key, event_id) SELECT * FROM unnest($24::text[], $25::text[]) ON CONFLICT DO NOTHING),
        inserted AS (INSERT INTO ${t.events} (id, customer_id, event_type, timestamp_ms, event_values, dimensions, properties, idempotency_key)
          SELECT id, "customerId", "eventType", "timestamp", "values", dimensions, properties, "idempotencyKey"
          FROM json_to_recordset($26::json) AS e(id text, "customerId" text, "eventType" text, "timestamp" bigint, "values" jsonb, dimensions jsonb, properties json, "idempotencyKey" text)),
        keyed AS (INSERT INTO ${t.valueKeys} (key) SELECT * FROM unnest($27::text[]) ON CONFLICT DO NOTHING)
      SELECT 1`,
      [
        touched,
        now,
        [...new Set(w.droppedHolds)],
        w.holds.map((h) => h.holdId),
        w.holds.map((h) => h.key),
        w.holds.map((h) => h.amount),
        w.holds.map((h) => h.expiresAt),
        counters.map((c) => c.slot.key),
        counters.map((c) => c.slot.limitId),
        counters.map((c) => c.slot.customerId),
        counters.map((c) => c.slot.windowStart),
        counters.map((c) => c.slot.windowEnd),
        counters.map((c) => c.state.count),
        counters.map((c) => c.state.sum),
        counters.map((c) => c.state.min),
        counters.map((c) => c.state.max),
        counters.map((c) => c.state.latest),
        counters.map((c) => c.state.latestAt),
        counters.map((c) => c.state.distinct),
        w.values.map((v) => v.key),
        w.values.map((v) => v.value),
        w.alerts.map((a) => a.key),
        w.alerts.map((a) => a.threshold),
        w.applied.map((a) => a.key),
        w.applied.map((a) => a.eventId),
        // One JSON document: several times cheaper to send and parse than eight arrays of JSON strings.
        JSON.stringify(events),
        valueKeysOf(events),
      ],
    ));
  }

  private async seed(client: PostgresClient, op: Extract<CounterOperation, { type: 'seed' }>): Promise<void> {
    const { slots } = await this.load(client, op, []);
    const fresh = op.seeds.filter((s) => !slots.has(s.slot.key));
    await this.write(client, [], op.now, {
      counters: new Map(fresh.map(({ slot, state }) => [slot.key, { slot, state: { ...state } }])),
      holds: [],
      droppedHolds: [],
      values: fresh.flatMap(({ slot, distinctValues }) => (slot.aggregation === 'unique' ? [...new Set(distinctValues ?? [])].map((value) => ({ key: slot.key, value })) : [])),
      alerts: [],
      applied: [],
      events: [],
    });
  }

  /**
   * Forgets ended windows without open holds (rebuilt from the ledger if an event lands there
   * later) and lapsed holds. Runs beside the hot path, under the same customer locks.
   */
  private async sweep(pool: PostgresPool, now: number): Promise<void> {
    const t = this.t;
    await pool.query(this.prepared(`DELETE FROM ${t.holds} WHERE expires_at <= $1`, [now]));
    const { rows } = await pool.query(this.prepared(
      `SELECT key, customer_id FROM ${t.counters} c WHERE window_end <= $1 AND NOT EXISTS (SELECT 1 FROM ${t.holds} h WHERE h.slot_key = c.key) LIMIT 1000`,
      [now],
    ));
    const ended = rows as Array<{ key: string; customer_id: string }>;
    if (ended.length === 0) return;
    await this.transaction(pool, async (client) => {
      await client.query(this.prepared(
        `WITH gone AS (DELETE FROM ${t.counters} c WHERE key = ANY($1::text[]) AND window_end <= $2 AND NOT EXISTS (SELECT 1 FROM ${t.holds} h WHERE h.slot_key = c.key) RETURNING key),
          a AS (DELETE FROM ${t.alerts} WHERE slot_key IN (SELECT key FROM gone)),
          v AS (DELETE FROM ${t.values} WHERE slot_key IN (SELECT key FROM gone)),
          e AS (DELETE FROM ${t.applied} WHERE slot_key IN (SELECT key FROM gone))
        SELECT count(*) FROM gone`,
        [ended.map((r) => r.key), now],
      ));
    }, this.lockStatement([...new Set(ended.map((r) => r.customer_id))].sort()));
  }
}
