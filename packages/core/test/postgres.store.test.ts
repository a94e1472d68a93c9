import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { STORE_CONTRACT_VERSION, createTollgate, type CreateLimitInput, type CreateMeterInput } from '@tollgate/core';
import { postgresStore, type PostgresPool } from '@tollgate/core/postgres';
import { POSTGRES_URL, describePostgres, dropSchemas, testSchema } from './fixtures/sql-postgres.js';

const T0 = Date.parse('2026-06-01T12:00:10.000Z');
const meters: CreateMeterInput[] = [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }];
const limits: CreateLimitInput[] = [{ id: 'per-minute', name: 'Tokens per minute', meterId: 'tokens', limitValue: 100, period: 'minute', alertThresholds: [50] }];

/**
 * A real pg.Pool that counts round trips: statements through `pool.query`, and statements on
 * clients the store checked out (pg's own `pool.query` also runs on a client: not counted twice).
 */
function countingPool() {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4 });
  const counts = { pool: 0, connects: 0, client: 0, texts: [] as string[] };
  const checkedOut = new WeakSet<object>();
  const wrapped = new WeakSet<object>();
  const spied: PostgresPool = {
    query: ((config: { text: string }) => {
      counts.pool++;
      counts.texts.push(config.text);
      return pool.query(config);
    }) as PostgresPool['query'],
    connect: async () => {
      counts.connects++;
      const client = await pool.connect();
      checkedOut.add(client);
      if (!wrapped.has(client)) {
        wrapped.add(client);
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        const release = client.release.bind(client);
        (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
          if (checkedOut.has(client)) {
            counts.client++;
            const first = args[0] as string | { text: string };
            counts.texts.push(typeof first === 'string' ? first : first.text);
          }
          return query(...args);
        };
        client.release = (error?: Error | boolean) => {
          checkedOut.delete(client);
          return release(error);
        };
      }
      return client as unknown as Awaited<ReturnType<PostgresPool['connect']>>;
    },
    end: () => pool.end(),
  };
  const reset = () => Object.assign(counts, { pool: 0, connects: 0, client: 0, texts: [] });
  return { pool, spied, counts, reset };
}

describePostgres('postgresStore', () => {
  const schemas: string[] = [];
  const schema = (label: string) => {
    const s = testSchema(label);
    schemas.push(s);
    return s;
  };
  let admin: pg.Client;
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
    await dropSchemas(schemas);
  });

  test('declares what it is: ledger and counters, shared, durable', () => {
    expect(postgresStore({ connectionString: POSTGRES_URL! }).capabilities).toEqual({ contract: STORE_CONTRACT_VERSION, ledger: true, counters: true, shared: true, durable: true });
  });

  test('rejects a bad connection or schema name before connecting', () => {
    expect(() => postgresStore({} as never)).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    expect(() => postgresStore({ connectionString: '' })).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    for (const bad of ['a-b', '1abc', 'x"; DROP SCHEMA public; --', '', 'a'.repeat(64)]) {
      expect(() => postgresStore({ connectionString: POSTGRES_URL! }, { schema: bad }), bad).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    }
  });

  test('says what went wrong when the server is unreachable', async () => {
    const store = postgresStore({ connectionString: 'postgres://postgres@127.0.0.1:1/test' }, { schema: schema('unreachable') });
    await expect(store.init!()).rejects.toMatchObject({ code: 'store_unavailable', message: expect.stringContaining('could not prepare schema') });
  });

  test('creates its tables in the configured schema with versioned migrations, safely when many start at once', async () => {
    const s = schema('migrations');
    const stores = Array.from({ length: 6 }, () => postgresStore({ connectionString: POSTGRES_URL! }, { schema: s }));
    await Promise.all(stores.map((store) => store.init!()));
    await Promise.all(stores.map((store) => store.close!()));
    const { rows } = await admin.query('SELECT version, name FROM ' + `"${s}".migrations`);
    expect(rows).toEqual([{ version: 1, name: 'ledger and counters' }]);
    const tables = await admin.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name', [s]);
    expect(tables.rows.map((r) => r.table_name)).toEqual(['counter_alerts', 'counter_events', 'counter_holds', 'counter_locks', 'counter_values', 'counters', 'customers', 'events', 'limits', 'meters', 'migrations', 'value_keys']);
    await admin.query(`INSERT INTO "${s}".migrations VALUES (99, 'from the future', 0)`);
    await expect(postgresStore({ connectionString: POSTGRES_URL! }, { schema: s }).init!()).rejects.toMatchObject({ code: 'store_unavailable', message: expect.stringContaining('newer') });
  });

  test('keeps events, definitions, counters and holds for the next process', async () => {
    const s = schema('durable');
    const first = createTollgate({ store: postgresStore({ connectionString: POSTGRES_URL! }, { schema: s }), meters, limits, now: () => T0 });
    await first.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 40 } });
    expect((await first.reserve({ customerId: 'c', eventType: 'llm', estimate: { tokens: 30 } })).allowed).toBe(true);
    await first.close();
    const second = createTollgate({ store: postgresStore({ connectionString: POSTGRES_URL! }, { schema: s }), now: () => T0 });
    expect((await second.limits.check({ customerId: 'c' })).limits[0]).toMatchObject({ limitId: 'per-minute', used: 70 });
    expect(await second.events.getSummary()).toEqual({ totalEvents: 1, values: { tokens: 40 } });
    await second.close();
  });

  test('uses an injected pool and leaves it open; a check of known slots is one read-only statement', async () => {
    const { pool, spied, counts, reset } = countingPool();
    const tollgate = createTollgate({ store: postgresStore({ pool: spied }, { schema: schema('roundtrips') }), meters, limits, now: () => T0 });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 10 } });
    await tollgate.limits.check({ customerId: 'c' });

    reset();
    expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(10);
    expect(counts).toMatchObject({ pool: 1, connects: 0, client: 0 });
    expect(counts.texts[0]).toMatch(/^SELECT/);

    reset();
    const r = await tollgate.reserve({ customerId: 'c', eventType: 'llm', estimate: { tokens: 5 } });
    // BEGIN with the customer's lock row, one read, one write, COMMIT.
    expect(counts).toMatchObject({ pool: 0, connects: 1, client: 4 });
    reset();
    await r.commit({ values: { tokens: 7 } });
    expect(counts).toMatchObject({ pool: 0, connects: 1, client: 4 });

    await tollgate.close();
    expect((await pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await pool.end();
  });

  test('lists by keyset on the customer index and filters dimensions through the GIN index', async () => {
    const { pool, spied, counts } = countingPool();
    const tollgate = createTollgate({ store: postgresStore({ pool: spied }, { schema: schema('plans') }) });
    await tollgate.events.batchIngest({ events: Array.from({ length: 50 }, (_, i) => ({ customerId: `c${i % 3}`, eventType: 'llm', values: { tokens: i }, dimensions: { model: `m${i % 4}` } })) });
    const page = await tollgate.events.list({ customerId: 'c1', limit: 4 });
    await tollgate.events.list({ customerId: 'c1', limit: 4, cursor: page.nextCursor! });
    await tollgate.events.list({ dimensions: { model: 'm2' }, limit: 4 });
    const lists = counts.texts.filter((t) => t.includes('ORDER BY timestamp_ms DESC, id DESC'));
    expect(lists).toHaveLength(3);
    const client = await pool.connect();
    try {
      // Tiny tables are seq-scanned; forbid that to see which index the statement fits.
      await client.query('SET enable_seqscan = off');
      const explain = async (text: string, values: unknown[]) => (await client.query(`EXPLAIN ${text}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n');
      const byCustomer = await explain(lists[1], ['c1', Date.now(), 'x', 4]);
      expect(lists[1]).not.toMatch(/OFFSET/i);
      expect(byCustomer).toMatch(/Index (Only )?Scan Backward using events_customer_time/);
      expect(byCustomer).not.toMatch(/Sort/);
      expect(await explain(lists[2], [JSON.stringify({ model: 'm2' }), 4])).toMatch(/events_dimensions/);
    } finally {
      client.release();
    }
    await tollgate.close();
    await pool.end();
  });

  test('sweeps ended windows and lapsed holds, and rebuilds a swept window from the ledger', async () => {
    const s = schema('sweep');
    let clock = T0;
    const alerts: number[] = [];
    const store = postgresStore({ connectionString: POSTGRES_URL! }, { schema: s });
    const tollgate = createTollgate({ store, meters, limits, now: () => clock, onAlert: (a) => { alerts.push(a.threshold); } });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 60 } });
    expect((await tollgate.reserve({ customerId: 'c', eventType: 'llm', estimate: { tokens: 20 }, ttlMs: 1000 })).allowed).toBe(true);
    const rows = async () => (await admin.query(`SELECT (SELECT count(*)::int FROM "${s}".counters WHERE customer_id = 'c') AS counters, (SELECT count(*)::int FROM "${s}".counter_holds) AS holds, (SELECT count(*)::int FROM "${s}".counter_alerts) AS alerts`)).rows[0];
    expect(await rows()).toEqual({ counters: 1, holds: 1, alerts: 1 });

    clock += 120_000;
    // Releases are one statement each and count as writes; the 8192nd starts a sweep.
    for (let i = 0; i < 8192; i++) await store.apply({ type: 'release', now: clock, holdId: `rsv_none_${i}`, slots: [] });
    await store.close!(); // waits for the sweep
    expect(await rows()).toEqual({ counters: 0, holds: 0, alerts: 0 });

    const again = createTollgate({ store: postgresStore({ connectionString: POSTGRES_URL! }, { schema: s }), now: () => clock, onAlert: (a) => { alerts.push(a.threshold); } });
    await again.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 10 }, timestamp: new Date(T0) });
    expect(alerts).toEqual([50]);
    expect((await admin.query(`SELECT event_count::int, value_sum FROM "${s}".counters WHERE customer_id = 'c'`)).rows).toEqual([{ event_count: 2, value_sum: 70 }]);
    await again.close();
  }, 120_000);

  test('a decision waits for a stalled ledger no longer than storeTimeoutMs, then onStoreError answers', async () => {
    const s = schema('stalled');
    // One connection, which the test takes away: every query of the store waits for it.
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    const daily = [{ id: 'daily', name: 'Daily tokens', meterId: 'tokens', limitValue: 100, period: 'day' as const }];
    const tollgate = createTollgate({ store: postgresStore({ pool: pool as unknown as PostgresPool }, { schema: s }), meters, limits: daily, storeTimeoutMs: 300, onStoreError: 'closed' });
    expect((await tollgate.limits.check({ customerId: 'known' })).reason).toBe('limits');
    const held = await pool.connect();
    try {
      const hung = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 3000));
      // A customer not seen yet: its day window needs its timezone, read from the ledger.
      const started = Date.now();
      expect(await Promise.race([tollgate.limits.check({ customerId: 'new' }), hung])).toMatchObject({ allowed: false, reason: 'store_error_closed' });
      expect(await Promise.race([tollgate.reserve({ customerId: 'other', eventType: 'llm', estimate: { tokens: 1 } }), hung])).toMatchObject({ allowed: false, reason: 'store_error_closed' });
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      held.release();
    }
    expect((await tollgate.limits.check({ customerId: 'new' })).reason).toBe('limits');
    await tollgate.close();
    await pool.end();
  }, 30_000);
});
