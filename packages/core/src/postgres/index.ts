export { postgresStore } from './store.js';
export type { PostgresClient, PostgresConnection, PostgresPool, PostgresStoreOptions } from './store.js';
