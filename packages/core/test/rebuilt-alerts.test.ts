import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { createTollgate, memoryStore, type AlertEvent, type Store } from '@tollgate/core';
import { postgresStore } from '@tollgate/core/postgres';
import { sqliteStore } from '@tollgate/core/sqlite';
import { POSTGRES_URL, describePostgres, dropSchemas, testSchema } from './fixtures/sql-postgres.js';

// A limit updated mid-window gets counters of its own, rebuilt from the ledger. In the stores that
// keep ledger and counters together the rebuild sees every event, none in flight: thresholds the
// usage had passed before count as announced, so a renamed limit does not alert again.

const dir = mkdtempSync(join(tmpdir(), 'tollgate-rebuilt-'));
const schemas: string[] = [];
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await dropSchemas(schemas);
});

function suite(name: string, store: () => Store) {
  test(`${name}: a limit updated mid-window announces no threshold its usage had passed`, async () => {
    let now = Date.parse('2026-06-01T12:00:00Z');
    const alerts: AlertEvent[] = [];
    const tollgate = createTollgate({
      store: store(),
      meters: [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }],
      limits: [{ id: 'tok', name: 'Tokens', meterId: 'tokens', limitValue: 100, period: 'day', alertThresholds: [50, 80] }],
      now: () => now,
      onAlert: (a) => void alerts.push(a),
    });
    const record = (tokens: number) => tollgate.events.record({ customerId: 'c', eventType: 'x', values: { tokens } });
    await record(60);
    now += 1000;
    await tollgate.limits.update('tok', { name: 'Daily tokens' });
    await record(5);
    expect(alerts.map((a) => [a.threshold, a.used])).toEqual([[50, 60]]);
    // Lowered below the usage: 80 % and 100 % of 60 were passed by the change, not by an event.
    now += 1000;
    await tollgate.limits.update('tok', { limitValue: 60 });
    await record(1);
    expect(alerts).toHaveLength(1);
    await tollgate.close();
  });
}

describe('counters rebuilt after a limit changes', () => {
  suite('memory', () => memoryStore());
  suite('sqlite', () => sqliteStore({ path: join(dir, 'usage.db') }));
});
describePostgres('counters rebuilt after a limit changes (postgres)', () => {
  suite('postgres', () => {
    const schema = testSchema('rebuilt');
    schemas.push(schema);
    return postgresStore({ connectionString: POSTGRES_URL! }, { schema });
  });
});
