/**
 * A process ingesting batches is killed with SIGKILL at a random moment, three times over. Every
 * batch whose batchIngest call returned is present whole; no batch is present in part; and the
 * counters, written in the same transaction, agree with the ledger.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTollgate, type Store } from '@tollgate/core';
import { sqliteStore } from '@tollgate/core/sqlite';
import { postgresStore } from '@tollgate/core/postgres';
import { POSTGRES_URL, describePostgres, dropSchemas, testSchema } from './fixtures/sql-postgres.js';
import { assertBuilt, startWorker } from './fixtures/sql-processes.js';

const SIZE = 1000;
const ROUNDS = 3;

beforeAll(() => assertBuilt());

function crashTest(name: string, config: Record<string, unknown>, open: () => Store) {
  test(`${name}: SIGKILL while ingesting leaves only whole batches`, async () => {
    const returned = new Set<number>();
    let first = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const worker = startWorker('sql-ingest.mjs', [JSON.stringify({ ...config, first, size: SIZE })]);
      await worker.waitFor((l) => l === `done ${first + 2}`);
      // Land the kill anywhere in the next batch: parsing, the transaction, or the commit.
      await sleep(Math.floor(Math.random() * 40));
      worker.child.kill('SIGKILL');
      const exit = await worker.exited;
      expect(exit.signal).toBe('SIGKILL');
      for (const line of worker.lines) if (line.startsWith('done ')) returned.add(Number(line.slice(5)));
      first = Math.max(...returned) + 10;
    }

    const store = open();
    const tollgate = createTollgate({ store });
    try {
      const { data } = await tollgate.events.getBreakdown({ groupBy: 'batch' });
      const sizes = new Map(data.map((row) => [row.dimension, row.totalEvents]));
      for (const n of returned) expect(sizes.get(`b${n}`), `batch ${n} returned, so it must be stored whole`).toBe(SIZE);
      for (const [batch, size] of sizes) expect(size, `batch ${batch} is stored in part`).toBe(SIZE);
      for (const row of data) expect(row.values).toEqual({ units: SIZE, position: (SIZE * (SIZE - 1)) / 2 });
      const total = [...sizes.values()].reduce((a, b) => a + b, 0);
      expect(total).toBeGreaterThanOrEqual(returned.size * SIZE);
      // Counters were updated in the same transactions as the ledger.
      for (let c = 0; c < 7; c++) {
        const customerId = `c${c}`;
        const ledger = (await tollgate.meters.query('events', { customerId })).value;
        const counted = (await tollgate.limits.check({ customerId })).limits[0].used;
        expect(counted).toBe(ledger);
      }
    } finally {
      await store.close?.();
    }
  });
}

describe('SQLite store under SIGKILL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sqlite-crash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'crash.db');
  crashTest('sqlite', { store: 'sqlite', path }, () => sqliteStore({ path }));
});

describePostgres('Postgres store under SIGKILL', () => {
  const schema = testSchema('crash');
  afterAll(() => dropSchemas([schema]));
  crashTest('postgres', { store: 'postgres', url: POSTGRES_URL, schema }, () => postgresStore({ connectionString: POSTGRES_URL! }, { schema }));
});
