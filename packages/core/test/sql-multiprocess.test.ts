/**
 * The guarantee DESIGN §2 calls the one peers get wrong (LiteLLM 34732, 27639, 28247, 34733;
 * OpenMeter 5118): N callers racing for the last units of a limit get exactly as many successes
 * as fit — here across 4 Node processes sharing one database, running the built package. The
 * processes start on an empty database together, so they also race through the migrations.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTollgate, type Event, type Store } from '@tollgate/core';
import { sqliteStore } from '@tollgate/core/sqlite';
import { postgresStore } from '@tollgate/core/postgres';
import { POSTGRES_URL, describePostgres, dropSchemas, testSchema } from './fixtures/sql-postgres.js';
import { assertBuilt, runTogether } from './fixtures/sql-processes.js';

const PROCESSES = 4;
const CONCURRENCY = 50;
const LIMIT = 100;

interface Report<R> {
  pid: number;
  alerts: Array<{ type: string; threshold: number }>;
  results: R[];
}
type ReserveResult = { allowed: boolean; reason: string; eventId?: string; recorded?: boolean; reservation?: string };
type RecordResult = { key: string; id: string; recorded: boolean };

async function allEvents(store: Store, customerId: string): Promise<Event[]> {
  const tollgate = createTollgate({ store });
  const out: Event[] = [];
  let cursor: string | undefined;
  do {
    const page = await tollgate.events.list({ customerId, limit: 37, cursor });
    out.push(...page.data);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}

/** `config` names a fresh database for one test; `verifier` opens that database in this process. */
function proofs(name: string, config: () => Record<string, unknown>, verifier: () => Store) {
  test(`${name}: ${PROCESSES} processes × ${CONCURRENCY} concurrent reservations against ${LIMIT} units → exactly ${LIMIT} allowed`, async () => {
    const customerId = 'racer';
    const shared = config();
    const reports = await runTogether<Report<ReserveResult>>(PROCESSES, 'sql-worker.mjs', () => [
      'reserve',
      JSON.stringify({ ...shared, limit: LIMIT, concurrency: CONCURRENCY, customerId }),
    ]);
    const results = reports.flatMap((r) => r.results);
    expect(results).toHaveLength(PROCESSES * CONCURRENCY);
    expect(results.every((r) => r.reason === 'limits')).toBe(true);
    const allowed = results.filter((r) => r.allowed);
    expect(allowed).toHaveLength(LIMIT);
    // Every process got some of the race, or the test proved nothing about sharing.
    expect(reports.filter((r) => r.results.some((x) => x.allowed)).length).toBeGreaterThan(1);
    expect(allowed.every((r) => r.recorded)).toBe(true);

    const store = verifier();
    try {
      const events = await allEvents(store, customerId);
      expect(events).toHaveLength(LIMIT);
      expect(new Set(events.map((e) => e.id))).toEqual(new Set(allowed.map((r) => r.eventId)));
      expect(new Set(events.map((e) => e.idempotencyKey))).toEqual(new Set(allowed.map((r) => r.reservation)));
      const tollgate = createTollgate({ store });
      expect(await tollgate.events.getSummary({ customerId })).toEqual({ totalEvents: LIMIT, values: { units: LIMIT } });
      const check = await tollgate.limits.check({ customerId });
      expect(check.limits[0]).toMatchObject({ used: LIMIT, exceeded: true, allowed: false });
      // One alert per threshold for the limit, however many processes crossed it.
      const alerts = reports.flatMap((r) => r.alerts).map((a) => `${a.type}@${a.threshold}`).sort();
      expect(alerts).toEqual(['limit.exceeded@100', 'limit.threshold_reached@50']);
    } finally {
      await store.close?.();
    }
  });

  test(`${name}: every record sent twice in each of two processes under one idempotency key is stored and counted once`, async () => {
    const customerId = 'replayer';
    const keysOf = (i: number) => Array.from({ length: LIMIT / 2 }, (_, k) => `key-${i < 2 ? 'a' : 'b'}-${k}`);
    const shared = config();
    const reports = await runTogether<Report<RecordResult>>(PROCESSES, 'sql-worker.mjs', (i) => [
      'idempotent',
      JSON.stringify({ ...shared, limit: LIMIT, customerId, keys: keysOf(i), copies: 2 }),
    ]);
    const results = reports.flatMap((r) => r.results);
    expect(results).toHaveLength(PROCESSES * (LIMIT / 2) * 2);
    const byKey = new Map<string, RecordResult[]>();
    for (const r of results) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
    expect(byKey.size).toBe(LIMIT);
    for (const [, sends] of byKey) {
      expect(sends).toHaveLength(4);
      expect(sends.filter((s) => s.recorded)).toHaveLength(1);
      expect(new Set(sends.map((s) => s.id)).size).toBe(1);
    }

    const store = verifier();
    try {
      const events = await allEvents(store, customerId);
      expect(events).toHaveLength(LIMIT);
      expect(new Set(events.map((e) => e.idempotencyKey)).size).toBe(LIMIT);
      expect(new Set(events.map((e) => e.id))).toEqual(new Set([...byKey.values()].map((s) => s[0].id)));
      const tollgate = createTollgate({ store });
      expect(await tollgate.events.getSummary({ customerId })).toEqual({ totalEvents: LIMIT, values: { units: LIMIT } });
      expect((await tollgate.limits.check({ customerId })).limits[0].used).toBe(LIMIT);
      const alerts = reports.flatMap((r) => r.alerts).map((a) => `${a.type}@${a.threshold}`).sort();
      expect(alerts).toEqual(['limit.exceeded@100', 'limit.threshold_reached@50']);
    } finally {
      await store.close?.();
    }
  });
}

beforeAll(() => assertBuilt());

describe('SQLite store shared by several processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sqlite-processes-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let path = '';
  let n = 0;
  const next = () => {
    path = join(dir, `shared-${++n}.db`);
    return { store: 'sqlite', path };
  };
  proofs('sqlite', next, () => sqliteStore({ path }));
});

describePostgres('Postgres store shared by several processes', () => {
  const schemas: string[] = [];
  afterAll(() => dropSchemas(schemas));
  let schema = '';
  const next = () => {
    schema = testSchema('processes');
    schemas.push(schema);
    return { store: 'postgres', url: POSTGRES_URL, schema };
  };
  proofs('postgres', next, () => postgresStore({ connectionString: POSTGRES_URL! }, { schema }));
});
