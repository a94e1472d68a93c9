export { sqliteStore } from './store.js';
export type { SqliteConnection, SqliteDatabase, SqliteStoreOptions } from './store.js';
