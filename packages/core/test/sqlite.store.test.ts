import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, test } from 'vitest';
import { STORE_CONTRACT_VERSION, createTollgate, type CreateLimitInput, type CreateMeterInput } from '@tollgate/core';
import { sqliteStore } from '@tollgate/core/sqlite';
import { migrations } from '../src/sqlite/schema.js';
import { requireJsonb } from '../src/sqlite/store.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-sqlite-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `db-${++files}.db`);

const T0 = Date.parse('2026-06-01T12:00:10.000Z');
const meters: CreateMeterInput[] = [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }];
const limits: CreateLimitInput[] = [{ id: 'per-minute', name: 'Tokens per minute', meterId: 'tokens', limitValue: 100, period: 'minute', alertThresholds: [50] }];

/** A real better-sqlite3 database whose prepared SQL texts are recorded. */
function recordingDatabase(path: string) {
  const db = new Database(path);
  const prepared: string[] = [];
  const prepare = db.prepare.bind(db);
  db.prepare = ((source: string) => {
    prepared.push(source);
    return prepare(source);
  }) as typeof db.prepare;
  return { db, prepared };
}

function plan(db: Database.Database, sql: string): string {
  const params = Object.fromEntries([...new Set(sql.match(/@p\d+/g) ?? [])].map((p) => [p.slice(1), 0]));
  return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as Array<{ detail: string }>).map((r) => r.detail).join('\n');
}

describe('sqliteStore', () => {
  test('declares what it is: ledger and counters, shared between processes, durable', () => {
    expect(sqliteStore({ path: freshPath() }).capabilities).toEqual({ contract: STORE_CONTRACT_VERSION, ledger: true, counters: true, shared: true, durable: true });
  });

  test('rejects a connection that is neither a path nor a database', () => {
    expect(() => sqliteStore({} as never)).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    expect(() => sqliteStore({ path: '' })).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    expect(() => sqliteStore({ database: {} as never })).toThrow(expect.objectContaining({ code: 'invalid_request' }));
  });

  test('says what went wrong when the file cannot be opened', async () => {
    const store = sqliteStore({ path: join(dir, 'missing-directory', 'x.db') });
    await expect(store.init!()).rejects.toMatchObject({ code: 'store_unavailable', message: expect.stringContaining('missing-directory') });
  });

  test('keeps events, definitions and counters across a restart', async () => {
    const path = freshPath();
    let clock = T0;
    const first = createTollgate({ store: sqliteStore({ path }), meters, limits, now: () => clock });
    await first.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 40 } });
    const held = await first.reserve({ customerId: 'c', eventType: 'llm', estimate: { tokens: 30 } });
    expect(held.allowed).toBe(true);
    await first.close();

    const second = createTollgate({ store: sqliteStore({ path }), now: () => clock });
    expect((await second.limits.check({ customerId: 'c' })).limits[0]).toMatchObject({ limitId: 'per-minute', used: 70 });
    expect(await second.events.getSummary()).toEqual({ totalEvents: 1, values: { tokens: 40 } });
    expect((await second.customers.retrieve('c')).id).toBe('c');
    clock += 60_000;
    expect((await second.limits.check({ customerId: 'c' })).limits[0].used).toBe(0);
    await second.close();
  });

  test('applies versioned migrations once, and refuses a schema newer than it knows', async () => {
    const path = freshPath();
    for (let i = 0; i < 3; i++) {
      const store = sqliteStore({ path });
      await store.init!();
      await store.close!();
    }
    const db = new Database(path);
    expect(db.prepare('SELECT version, name FROM tollgate_migrations ORDER BY version').all()).toEqual([
      { version: 1, name: 'ledger and counters' },
      { version: 2, name: 'event values and dimensions as JSONB' },
    ]);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.prepare('INSERT INTO tollgate_migrations (version, name, applied_at) VALUES (99, ?, 0)').run('from the future');
    db.close();
    await expect(sqliteStore({ path }).init!()).rejects.toMatchObject({ code: 'store_unavailable', message: expect.stringContaining('newer') });
  });

  // Version 2 stores values and dimensions as JSONB. A database written by version 1 (JSON text)
  // is rebuilt when a newer store opens it, and reads back the same events and totals.
  test('refuses SQLite older than 3.45 (no JSONB), saying what to install, and accepts newer ones', () => {
    for (const old of ['3.44.2', '3.9.0', '2.8.17']) {
      expect(() => requireJsonb(old)).toThrow(expect.objectContaining({ code: 'store_unavailable', message: expect.stringContaining(`needs SQLite 3.45 or newer (it stores events as JSONB); this better-sqlite3 runs SQLite ${old}. Install better-sqlite3@12`) }));
    }
    for (const fine of ['3.45.0', '3.50.4', '4.0.0']) expect(() => requireJsonb(fine)).not.toThrow();
    // The SQLite this better-sqlite3 bundles passes, or no other test here could run.
    const db = new Database(':memory:');
    expect(() => requireJsonb(String(db.prepare('SELECT sqlite_version()').pluck().get()))).not.toThrow();
    db.close();
  });

  test('upgrades a database of schema version 1: the events keep every field, as JSONB', async () => {
    const path = freshPath();
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    old.exec('CREATE TABLE tollgate_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT');
    old.transaction(() => {
      for (const statement of migrations[0].statements) old.exec(statement);
      old.prepare('INSERT INTO tollgate_migrations VALUES (1, ?, 0)').run(migrations[0].name);
    })();
    const insert = old.prepare('INSERT INTO tollgate_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const odd = { model: 'm1', 'a.b-c': 'it\'s "quoted" \\ é \u{1F600}' };
    const rows = [
      ['evt_1', 'c', 'llm', T0, JSON.stringify({ tokens: 40, cost: 0.1 }), JSON.stringify(odd), JSON.stringify({ note: 'x' }), 'key-1'],
      ['evt_2', 'c', 'llm', T0 + 1, JSON.stringify({ tokens: 2.5 }), JSON.stringify({ model: 'm2' }), null, null],
      ['evt_3', 'd', 'api', T0 + 2, '{}', '{}', null, null],
    ];
    for (const r of rows) insert.run(...r);
    old.prepare('INSERT INTO tollgate_value_keys VALUES (?), (?)').run('tokens', 'cost');
    old.close();

    const tollgate = createTollgate({ store: sqliteStore({ path }), meters, now: () => T0 + 10 });
    const listed = await tollgate.events.list({});
    expect(listed.data.map((e) => [e.id, e.values, e.dimensions, e.properties, e.idempotencyKey])).toEqual([
      ['evt_3', {}, {}, undefined, undefined],
      ['evt_2', { tokens: 2.5 }, { model: 'm2' }, undefined, undefined],
      ['evt_1', { tokens: 40, cost: 0.1 }, odd, { note: 'x' }, 'key-1'],
    ]);
    expect(await tollgate.events.getSummary({})).toEqual({ totalEvents: 3, values: { tokens: 42.5, cost: 0.1 } });
    const byModel = await tollgate.events.getBreakdown({ groupBy: 'model' });
    expect(byModel.data.map((g) => [g.dimension, g.totalEvents])).toEqual(expect.arrayContaining([['m1', 1], ['m2', 1], [null, 1]]));
    expect((await tollgate.events.getSummary({ dimensions: { 'a.b-c': odd['a.b-c'] } })).totalEvents).toBe(1);
    expect(await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 1 }, idempotencyKey: 'key-1' })).toEqual({ id: 'evt_1', recorded: false });
    await tollgate.close();
    const db = new Database(path);
    expect(db.prepare('SELECT DISTINCT typeof(event_values) AS v, typeof(dimensions) AS d FROM tollgate_events').all()).toEqual([{ v: 'blob', d: 'blob' }]);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tollgate_events' AND sql IS NOT NULL ORDER BY name").pluck().all()).toEqual(['tollgate_events_customer_time', 'tollgate_events_idempotency', 'tollgate_events_time']);
    db.close();
  });

  test('uses an injected database as it is and leaves it open', async () => {
    const db = new Database(freshPath());
    const tollgate = createTollgate({ store: sqliteStore({ database: db }), meters });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 1 } });
    await tollgate.close();
    expect(db.open).toBe(true);
    expect(db.prepare('SELECT count(*) AS n FROM tollgate_events').get()).toEqual({ n: 1 });
    db.close();
  });

  test('answers a check from a read snapshot while another connection holds the write lock', async () => {
    const path = freshPath();
    const tollgate = createTollgate({ store: sqliteStore({ path }, { busyTimeoutMs: 50 }), meters, limits, now: () => T0 });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 60 } });
    expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(60);

    const other = new Database(path);
    other.prepare('BEGIN IMMEDIATE').run();
    try {
      // Readers never wait for the writer in WAL mode.
      expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(60);
      // A write waits busyTimeoutMs, then fails without changing anything.
      await expect(tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 1 } })).rejects.toMatchObject({ code: 'store_unavailable' });
    } finally {
      other.prepare('ROLLBACK').run();
      other.close();
    }
    expect(await tollgate.events.getSummary()).toEqual({ totalEvents: 1, values: { tokens: 60 } });
    await tollgate.close();
  });

  test('pages events by keyset on an index, never OFFSET, and sorts nothing in memory', async () => {
    const { db, prepared } = recordingDatabase(freshPath());
    const tollgate = createTollgate({ store: sqliteStore({ database: db }) });
    await tollgate.events.batchIngest({ events: Array.from({ length: 30 }, (_, i) => ({ customerId: `c${i % 3}`, eventType: 'llm', values: { tokens: i } })) });
    const page = await tollgate.events.list({ customerId: 'c1', limit: 4 });
    await tollgate.events.list({ customerId: 'c1', limit: 4, cursor: page.nextCursor! });
    await tollgate.events.list({ limit: 4, cursor: page.nextCursor! });
    const lists = prepared.filter((sql) => sql.includes('ORDER BY timestamp_ms DESC, id DESC'));
    expect(lists.length).toBeGreaterThanOrEqual(3);
    for (const sql of lists) {
      expect(sql).not.toMatch(/OFFSET/i);
      const p = plan(db, sql);
      expect(p).toMatch(/USING (COVERING )?INDEX tollgate_events_(customer_)?time/);
      expect(p).not.toMatch(/TEMP B-TREE/);
    }
    await tollgate.close();
    db.close();
  });

  test('sweeps ended windows and lapsed holds, and rebuilds a swept window from the ledger', async () => {
    const path = freshPath();
    let clock = T0;
    const alerts: number[] = [];
    const tollgate = createTollgate({ store: sqliteStore({ path }), meters, limits, now: () => clock, onAlert: (a) => { alerts.push(a.threshold); } });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 60 } });
    const held = await tollgate.reserve({ customerId: 'c', eventType: 'llm', estimate: { tokens: 20 }, ttlMs: 1000 });
    expect(held.allowed).toBe(true);
    expect(alerts).toEqual([50]);
    const db = new Database(path, { readonly: true });
    const rows = () => db.prepare("SELECT (SELECT count(*) FROM tollgate_counters WHERE customer_id = 'c') AS counters, (SELECT count(*) FROM tollgate_counter_holds) AS holds, (SELECT count(*) FROM tollgate_counter_alerts) AS alerts").get();
    expect(rows()).toEqual({ counters: 1, holds: 1, alerts: 1 });

    clock += 120_000;
    // Reservations and releases count as writes; one of them triggers the sweep.
    for (let i = 0; i < 8192; i++) await (await tollgate.reserve({ customerId: 'nobody-limited', eventType: 'none', estimate: {} })).release();
    expect(rows()).toEqual({ counters: 0, holds: 0, alerts: 0 });

    // A late event for the swept window: the slot is rebuilt from the ledger, and its
    // threshold, already reached when the window ended, does not alert again.
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 10 }, timestamp: new Date(T0) });
    expect(alerts).toEqual([50]);
    expect((await tollgate.meters.query('tokens', { customerId: 'c', startDate: new Date(T0 - 10_000), endDate: new Date(T0 + 50_000) })).value).toBe(70);
    expect(db.prepare("SELECT event_count, value_sum FROM tollgate_counters WHERE customer_id = 'c'").get()).toEqual({ event_count: 2, value_sum: 70 });
    db.close();
    await tollgate.close();
  }, 60_000);
});

describe('a database that cannot be opened when the service starts', () => {
  // The directory does not exist yet, so SQLite cannot open the file: as a database that is down
  // while the service starts. It is made a moment later, as the database comes back.
  const engineOnMissingDirectory = (onStoreError: 'open' | 'closed') => {
    const missing = join(dir, `later-${++files}`);
    const tollgate = createTollgate({ store: sqliteStore({ path: join(missing, 'usage.db') }), meters, limits, onStoreError });
    return { tollgate, bringBack: () => mkdirSync(missing) };
  };

  test('checks and reservations answer by onStoreError meanwhile, and everything works once it opens', async () => {
    const { tollgate, bringBack } = engineOnMissingDirectory('open');
    const check = await tollgate.limits.check({ customerId: 'c', estimate: { tokens: 10 } });
    expect(check).toMatchObject({ allowed: true, reason: 'store_error_open', limits: [] });
    const reservation = await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 10 } });
    expect(reservation).toMatchObject({ allowed: true, reason: 'store_error_open', limits: [] });
    await expect(tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 1 } })).rejects.toMatchObject({ code: 'store_unavailable' });
    await expect(tollgate.ready()).rejects.toMatchObject({ code: 'store_unavailable' });

    bringBack();
    // The next calls start up again: the declared meter and limit are created, and usage counts.
    expect((await tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens: 30 } })).recorded).toBe(true);
    expect((await reservation.commit({ values: { tokens: 5 } })).recorded).toBe(true);
    const after = await tollgate.limits.check({ customerId: 'c' });
    expect(after).toMatchObject({ allowed: true, reason: 'limits' });
    expect(after.limits.map((l) => [l.limitId, l.used])).toEqual([['per-minute', 35]]);
    await expect(tollgate.ready()).resolves.toBeUndefined();
    await tollgate.close();
  });

  test("with onStoreError 'closed' they are refused meanwhile", async () => {
    const { tollgate, bringBack } = engineOnMissingDirectory('closed');
    expect(await tollgate.limits.check({ customerId: 'c' })).toMatchObject({ allowed: false, reason: 'store_error_closed' });
    expect(await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: { tokens: 1 } })).toMatchObject({ allowed: false, reason: 'store_error_closed' });
    bringBack();
    expect(await tollgate.limits.check({ customerId: 'c' })).toMatchObject({ allowed: true, reason: 'limits' });
    await tollgate.close();
  });
});
