import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { postgresStore } from '@tollgate/core/postgres';
import { redisCounters } from '@tollgate/core/redis';
import { storeConformance } from '@tollgate/core/testing';
import { deleteKeys } from './fixtures/redis.js';
import { POSTGRES_URL, describePostgres, dropSchemas, testSchema } from './fixtures/sql-postgres.js';

describePostgres('postgres store conformance', () => {
  const schemas: string[] = [];
  afterAll(() => dropSchemas(schemas));
  const store = () => {
    const schema = testSchema('conformance');
    schemas.push(schema);
    return postgresStore({ connectionString: POSTGRES_URL! }, { schema });
  };

  storeConformance({ describe, test, expect, beforeAll, afterAll }, {
    name: 'postgres',
    create: () => {
      const s = store();
      return { store: s, cleanup: () => s.close?.() };
    },
  });

  // DESIGN §6: many instances on Postgres with the counters in Redis. The ledger seeds Redis.
  const redisUrl = process.env.TOLLGATE_REDIS_URL;
  if (!POSTGRES_URL) return;
  if (!redisUrl) {
    if (process.env.CI === 'true') throw new Error('CI=true but TOLLGATE_REDIS_URL is not set: the Postgres + Redis suite must run in CI.');
    console.warn('[tollgate] skipping "postgres ledger beside redis counters": set TOLLGATE_REDIS_URL=redis://127.0.0.1:6379 to run it.');
    return;
  }
  const prefix = `tollgate-test:pg-ledger:${randomUUID().slice(0, 8)}:`;
  let n = 0;
  afterAll(async () => {
    const admin = new Redis(redisUrl);
    await deleteKeys(admin, prefix);
    await admin.quit();
  });
  storeConformance({ describe, test, expect, beforeAll, afterAll }, {
    name: 'postgres ledger beside redis counters',
    create: () => {
      const s = store();
      const counters = redisCounters({ url: redisUrl, prefix: `${prefix}${++n}:` });
      return { store: s, counters, cleanup: async () => { await s.close?.(); await counters.close?.(); } };
    },
  });
});
