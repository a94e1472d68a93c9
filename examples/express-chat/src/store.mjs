// Where Tollgate keeps usage: memory by default, or SQLite / Postgres by one variable.
//   TOLLGATE_STORE=sqlite   TOLLGATE_SQLITE_PATH=./tollgate.db (default)
//   TOLLGATE_STORE=postgres DATABASE_URL=postgres://postgres@127.0.0.1:5432/test (default)
import { memoryStore } from '@tollgate/core';

export async function storeFromEnv(env = process.env) {
  const kind = env.TOLLGATE_STORE ?? 'memory';
  if (kind === 'memory') return memoryStore();
  if (kind === 'sqlite') {
    const { sqliteStore } = await import('@tollgate/core/sqlite');
    return sqliteStore({ path: env.TOLLGATE_SQLITE_PATH ?? 'tollgate.db' });
  }
  if (kind === 'postgres') {
    const { postgresStore } = await import('@tollgate/core/postgres');
    return postgresStore({ connectionString: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' }, { schema: env.TOLLGATE_SCHEMA });
  }
  throw new Error(`TOLLGATE_STORE must be memory, sqlite or postgres (got "${kind}")`);
}
