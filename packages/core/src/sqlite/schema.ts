import type { Migration } from '../sql/common.js';

/** Every table carries this prefix, so the store can share a database file with an application. */
export const PREFIX = 'tollgate_';

export const MIGRATIONS_TABLE = `${PREFIX}migrations`;

/**
 * Schema versions, applied in order under `BEGIN IMMEDIATE`. Never edit a released migration:
 * add the next version.
 */
export const migrations: Migration[] = [
  {
    version: 1,
    name: 'ledger and counters',
    statements: [
      `CREATE TABLE ${PREFIX}customers (id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT`,
      `CREATE TABLE ${PREFIX}meters (id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT`,
      `CREATE TABLE ${PREFIX}limits (id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT`,
      `CREATE TABLE ${PREFIX}events (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        event_values TEXT NOT NULL,
        dimensions TEXT NOT NULL,
        properties TEXT,
        idempotency_key TEXT
      ) STRICT`,
      `CREATE UNIQUE INDEX ${PREFIX}events_idempotency ON ${PREFIX}events (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL`,
      `CREATE INDEX ${PREFIX}events_customer_time ON ${PREFIX}events (customer_id, timestamp_ms, id)`,
      `CREATE INDEX ${PREFIX}events_time ON ${PREFIX}events (timestamp_ms, id)`,
      // Every value key ever recorded: totals sum one column per key instead of expanding JSON.
      `CREATE TABLE ${PREFIX}value_keys (key TEXT PRIMARY KEY) STRICT, WITHOUT ROWID`,
      `CREATE TABLE ${PREFIX}counters (
        key TEXT PRIMARY KEY,
        limit_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        window_end INTEGER,
        event_count INTEGER NOT NULL,
        value_sum REAL NOT NULL,
        value_min REAL,
        value_max REAL,
        latest_value REAL,
        latest_at INTEGER,
        distinct_count INTEGER NOT NULL
      ) STRICT`,
      `CREATE INDEX ${PREFIX}counters_window_end ON ${PREFIX}counters (window_end) WHERE window_end IS NOT NULL`,
      // seq is the placement order (holds are read in it; `latest` picks the greatest hold id itself).
      `CREATE TABLE ${PREFIX}counter_holds (
        seq INTEGER PRIMARY KEY,
        hold_id TEXT NOT NULL,
        slot_key TEXT NOT NULL,
        amount REAL NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT`,
      `CREATE UNIQUE INDEX ${PREFIX}counter_holds_hold ON ${PREFIX}counter_holds (hold_id, slot_key)`,
      `CREATE INDEX ${PREFIX}counter_holds_slot ON ${PREFIX}counter_holds (slot_key, seq)`,
      `CREATE INDEX ${PREFIX}counter_holds_expiry ON ${PREFIX}counter_holds (expires_at)`,
      `CREATE TABLE ${PREFIX}counter_alerts (slot_key TEXT NOT NULL, threshold REAL NOT NULL, PRIMARY KEY (slot_key, threshold)) STRICT, WITHOUT ROWID`,
      `CREATE TABLE ${PREFIX}counter_values (slot_key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (slot_key, value)) STRICT, WITHOUT ROWID`,
      `CREATE TABLE ${PREFIX}counter_events (slot_key TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (slot_key, event_id)) STRICT, WITHOUT ROWID`,
    ],
  },
  {
    version: 2,
    name: 'event values and dimensions as JSONB',
    // SQLite's binary JSON is read without parsing text: summaries and breakdowns over many
    // events pull their fields out of it about a fifth faster. The table is rebuilt, as SQLite
    // changes a column's type; events keep their rowids and ids.
    statements: [
      `CREATE TABLE ${PREFIX}events_v2 (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        event_values BLOB NOT NULL,
        dimensions BLOB NOT NULL,
        properties TEXT,
        idempotency_key TEXT
      ) STRICT`,
      `INSERT INTO ${PREFIX}events_v2 (rowid, id, customer_id, event_type, timestamp_ms, event_values, dimensions, properties, idempotency_key)
        SELECT rowid, id, customer_id, event_type, timestamp_ms, jsonb(event_values), jsonb(dimensions), properties, idempotency_key FROM ${PREFIX}events`,
      `DROP TABLE ${PREFIX}events`,
      `ALTER TABLE ${PREFIX}events_v2 RENAME TO ${PREFIX}events`,
      `CREATE UNIQUE INDEX ${PREFIX}events_idempotency ON ${PREFIX}events (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL`,
      `CREATE INDEX ${PREFIX}events_customer_time ON ${PREFIX}events (customer_id, timestamp_ms, id)`,
      `CREATE INDEX ${PREFIX}events_time ON ${PREFIX}events (timestamp_ms, id)`,
    ],
  },
];
