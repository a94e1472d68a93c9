// Where Tollgate keeps usage: memory by default, or SQLite / Postgres by one variable.
//   TOLLGATE_STORE=sqlite   TOLLGATE_SQLITE_PATH=./tollgate.db (default)
//   TOLLGATE_STORE=postgres DATABASE_URL=postgres://postgres@127.0.0.1:5432/test (default)
// The SQL stores load their driver (better-sqlite3, pg) only when created.
import { memoryStore } from '@tollgate/core';
import { postgresStore } from '@tollgate/core/postgres';
import { sqliteStore } from '@tollgate/core/sqlite';

export function storeFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const kind = env.TOLLGATE_STORE ?? 'memory';
  if (kind === 'memory') return memoryStore();
  if (kind === 'sqlite') return sqliteStore({ path: env.TOLLGATE_SQLITE_PATH ?? 'tollgate.db' });
  if (kind === 'postgres') {
    return postgresStore({ connectionString: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' }, { schema: env.TOLLGATE_SCHEMA });
  }
  throw new Error(`TOLLGATE_STORE must be memory, sqlite or postgres (got "${kind}")`);
}
