import type { Migration } from '../sql/common.js';

/** Rows of the per-customer lock table; a customer locks row `hash(customerId) % LOCK_BUCKETS`. */
export const LOCK_BUCKETS = 16384;

/** Table names inside the store's schema, quoted and qualified. */
export function tablesIn(schema: string) {
  const q = `"${schema}"`;
  return {
    schema: q,
    migrations: `${q}.migrations`,
    customers: `${q}.customers`,
    meters: `${q}.meters`,
    limits: `${q}.limits`,
    events: `${q}.events`,
    valueKeys: `${q}.value_keys`,
    counters: `${q}.counters`,
    holds: `${q}.counter_holds`,
    alerts: `${q}.counter_alerts`,
    values: `${q}.counter_values`,
    applied: `${q}.counter_events`,
    locks: `${q}.counter_locks`,
  };
}

export type Tables = ReturnType<typeof tablesIn>;

/**
 * Schema versions, applied in order under a transaction-scoped advisory lock. Never edit a
 * released migration: add the next version. Text columns use the "C" collation so ordering
 * matches JavaScript's for the ids Tollgate generates and is independent of the database locale.
 */
export function migrationsFor(t: Tables): Migration[] {
  return [
    {
      version: 1,
      name: 'ledger and counters',
      statements: [
        `CREATE TABLE ${t.customers} (id text COLLATE "C" PRIMARY KEY, body json NOT NULL)`,
        `CREATE TABLE ${t.meters} (id text COLLATE "C" PRIMARY KEY, body json NOT NULL)`,
        `CREATE TABLE ${t.limits} (id text COLLATE "C" PRIMARY KEY, body json NOT NULL)`,
        `CREATE TABLE ${t.events} (
          id text COLLATE "C" PRIMARY KEY,
          customer_id text COLLATE "C" NOT NULL,
          event_type text COLLATE "C" NOT NULL,
          timestamp_ms bigint NOT NULL,
          event_values jsonb NOT NULL,
          dimensions jsonb NOT NULL,
          properties json,
          idempotency_key text COLLATE "C"
        )`,
        `CREATE UNIQUE INDEX events_idempotency ON ${t.events} (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL`,
        `CREATE INDEX events_customer_time ON ${t.events} (customer_id, timestamp_ms, id)`,
        `CREATE INDEX events_time ON ${t.events} (timestamp_ms, id)`,
        `CREATE INDEX events_dimensions ON ${t.events} USING gin (dimensions jsonb_path_ops)`,
        // Every value key ever recorded: totals sum one column per key instead of expanding jsonb.
        `CREATE TABLE ${t.valueKeys} (key text COLLATE "C" PRIMARY KEY)`,
        `CREATE TABLE ${t.counters} (
          key text COLLATE "C" PRIMARY KEY,
          limit_id text COLLATE "C" NOT NULL,
          customer_id text COLLATE "C" NOT NULL,
          window_start bigint NOT NULL,
          window_end bigint,
          event_count bigint NOT NULL,
          value_sum double precision NOT NULL,
          value_min double precision,
          value_max double precision,
          latest_value double precision,
          latest_at bigint,
          distinct_count bigint NOT NULL
        )`,
        `CREATE INDEX counters_window_end ON ${t.counters} (window_end) WHERE window_end IS NOT NULL`,
        // seq is the placement order (holds are read in it; `latest` picks the greatest hold id itself).
        `CREATE TABLE ${t.holds} (
          seq bigint GENERATED ALWAYS AS IDENTITY,
          hold_id text COLLATE "C" NOT NULL,
          slot_key text COLLATE "C" NOT NULL,
          amount double precision NOT NULL,
          expires_at bigint NOT NULL,
          PRIMARY KEY (hold_id, slot_key)
        )`,
        `CREATE INDEX counter_holds_slot ON ${t.holds} (slot_key, seq)`,
        `CREATE INDEX counter_holds_expiry ON ${t.holds} (expires_at)`,
        `CREATE TABLE ${t.alerts} (slot_key text COLLATE "C" NOT NULL, threshold double precision NOT NULL, PRIMARY KEY (slot_key, threshold))`,
        `CREATE TABLE ${t.values} (slot_key text COLLATE "C" NOT NULL, value text COLLATE "C" NOT NULL, PRIMARY KEY (slot_key, value))`,
        `CREATE TABLE ${t.applied} (slot_key text COLLATE "C" NOT NULL, event_id text COLLATE "C" NOT NULL, PRIMARY KEY (slot_key, event_id))`,
        // Row locks, not advisory locks: a batch touching many customers cannot exhaust the lock table.
        `CREATE TABLE ${t.locks} (bucket integer PRIMARY KEY)`,
        `INSERT INTO ${t.locks} (bucket) SELECT generate_series(0, ${LOCK_BUCKETS - 1})`,
      ],
    },
  ];
}
