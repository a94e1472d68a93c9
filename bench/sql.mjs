// The SQLite and Postgres stores through the public engine, as a service runs them: ingest
// (single events and batches of 1000), the check and reserve+commit latencies of the hot path,
// and the ledger queries over a large event table.
//
//   npx turbo run build --filter=@tollgate/core && node bench/sql.mjs [--quick] [--sqlite-only]
//
// Postgres: TOLLGATE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test); the
// benchmark works in a schema of its own and drops it afterwards. --quick runs the queries
// over 100k events instead of 1M and takes fewer samples.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTollgate } from '@tollgate/core';
import { sqliteStore } from '@tollgate/core/sqlite';
import { postgresStore } from '@tollgate/core/postgres';
import { machine, median, table } from './lib/measure.mjs';

const quick = process.argv.includes('--quick');
const sqliteOnly = process.argv.includes('--sqlite-only');
const POSTGRES_URL = process.env.TOLLGATE_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const QUERY_EVENTS = quick ? 100_000 : 1_000_000;
const SINGLE = quick ? 1_000 : 5_000;
const BATCHES = quick ? 20 : 100;
const LATENCY = quick ? 1_000 : 5_000;
const QUERY_RUNS = quick ? 3 : 5;
const DAY = 86_400_000;
const MODELS = ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'llama-3', 'mistral-large'];

const meters = [
  { id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' },
  { id: 'requests', name: 'Requests', aggregation: 'count', field: '*' },
];
const limits = [
  { id: 'tokens-day', name: 'Tokens per day', meterId: 'tokens', limitValue: 1e12, period: 'day', alertThresholds: [50, 80] },
  { id: 'requests-minute', name: 'Requests per minute', meterId: 'requests', limitValue: 1e12, period: 'minute' },
];

const now = () => performance.now();
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (x) => (x < 1 ? `${(x * 1000).toFixed(0)} µs` : `${x.toFixed(x < 10 ? 2 : 0)} ms`);
const rate = (n, elapsedMs) => `${Math.round(n / (elapsedMs / 1000)).toLocaleString('en-US')}/s`;

function event(i, customers) {
  return {
    customerId: `cus_${customers(i)}`,
    eventType: i % 10 === 0 ? 'embedding' : 'llm.completion',
    values: { tokens: 100 + (i % 900), input_tokens: i % 700, output_tokens: i % 300, cost: (i % 40) / 4 },
    dimensions: { model: MODELS[i % MODELS.length], region: i % 3 === 0 ? 'eu' : 'us' },
  };
}

async function latencies(n, fn) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    await fn(i);
    samples.push(now() - t);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), total: samples.reduce((a, b) => a + b, 0) };
}

async function hotPath(name, makeStore) {
  const store = makeStore();
  const tollgate = createTollgate({ store, meters, limits, storeTimeoutMs: 60_000 });
  await tollgate.ready();
  const out = {};

  const single = await latencies(SINGLE, (i) => tollgate.events.record(event(i, (j) => j % 100)));
  out['record one event (p50 / p99)'] = `${ms(single.p50)} / ${ms(single.p99)}`;
  out['record one event, sequential'] = rate(SINGLE, single.total);

  // Customers are created on their first event; measure the steady state, where they exist.
  for (const [from, to] of [[100, 600], [1000, 2000]]) {
    for (let c = from; c < to; c += 500) {
      await tollgate.events.batchIngest({ events: Array.from({ length: Math.min(500, to - c) }, (_, i) => ({ customerId: `cus_${c + i}`, eventType: 'warm.up' })) });
    }
  }
  // Typical: a batch from a service's buffer spans a few tenants.
  let t = now();
  for (let b = 0; b < BATCHES; b++) {
    await tollgate.events.batchIngest({ events: Array.from({ length: 1000 }, (_, i) => event(b * 1000 + i, (j) => 100 + (Math.floor(j / 100) % 500))) });
  }
  out['batch of 1000, 10 customers per batch'] = rate(BATCHES * 1000, now() - t);
  // Worst case: every event of a batch from another customer, so every index page is touched.
  t = now();
  for (let b = 0; b < BATCHES; b++) {
    await tollgate.events.batchIngest({ events: Array.from({ length: 1000 }, (_, i) => event(b * 1000 + i, (j) => 1000 + (j % 1000))) });
  }
  out['batch of 1000, 1000 customers per batch'] = rate(BATCHES * 1000, now() - t);
  // Several instances ingesting at once (here 4 callers in one process).
  t = now();
  await Promise.all(Array.from({ length: 4 }, async (_, w) => {
    for (let b = w; b < BATCHES; b += 4) {
      await tollgate.events.batchIngest({ events: Array.from({ length: 1000 }, (_, i) => event(b * 1000 + i, (j) => 100 + (Math.floor(j / 100) % 500))) });
    }
  }));
  out['batch of 1000, 4 concurrent callers'] = rate(BATCHES * 1000, now() - t);

  await tollgate.limits.check({ customerId: 'cus_hot' });
  const check = await latencies(LATENCY, () => tollgate.limits.check({ customerId: 'cus_hot', eventType: 'llm.completion', estimate: { tokens: 500 } }));
  out['check, 2 limits (p50 / p99)'] = `${ms(check.p50)} / ${ms(check.p99)}`;
  const reserve = await latencies(LATENCY, async () => {
    const r = await tollgate.reserve({ customerId: 'cus_hot', eventType: 'llm.completion', estimate: { tokens: 500 } });
    await r.commit({ values: { tokens: 420 } });
  });
  out['reserve + commit, 2 limits (p50 / p99)'] = `${ms(reserve.p50)} / ${ms(reserve.p99)}`;

  // 50 callers at once on one customer: they serialise on its counters.
  t = now();
  await Promise.all(Array.from({ length: 50 }, async () => {
    for (let i = 0; i < LATENCY / 50; i++) {
      const r = await tollgate.reserve({ customerId: 'cus_contended', eventType: 'llm.completion', estimate: { tokens: 10 } });
      await r.commit();
    }
  }));
  out['reserve + commit, 50 concurrent on one customer'] = rate(LATENCY, now() - t);
  t = now();
  await Promise.all(Array.from({ length: 50 }, async (_, c) => {
    for (let i = 0; i < LATENCY / 50; i++) {
      const r = await tollgate.reserve({ customerId: `cus_spread_${c}`, eventType: 'llm.completion', estimate: { tokens: 10 } });
      await r.commit();
    }
  }));
  out['reserve + commit, 50 concurrent on 50 customers'] = rate(LATENCY, now() - t);
  await tollgate.close();
  return out;
}

async function queries(name, makeStore, prepare) {
  const store = makeStore();
  // No limits: loading measures the ledger, and the queries run over a plain event table.
  const tollgate = createTollgate({ store, meters, storeTimeoutMs: 60_000 });
  await tollgate.ready();
  const start = Date.parse('2026-01-01T00:00:00.000Z');
  const t = now();
  for (let b = 0; b < QUERY_EVENTS / 1000; b++) {
    const events = Array.from({ length: 1000 }, (_, i) => {
      const n = b * 1000 + i;
      return { ...event(n, (j) => j % 1000), timestamp: new Date(start + Math.floor((n / QUERY_EVENTS) * 30 * DAY)) };
    });
    await tollgate.events.batchIngest({ events });
  }
  const loaded = now() - t;
  await prepare?.();
  const out = { [`load ${QUERY_EVENTS.toLocaleString('en-US')} events (batches of 1000)`]: rate(QUERY_EVENTS, loaded) };
  const timed = async (label, fn) => {
    await fn(); // warm caches and the JIT: the figures are for a running service
    const runs = [];
    for (let i = 0; i < QUERY_RUNS; i++) {
      const s = now();
      await fn();
      runs.push(now() - s);
    }
    out[label] = ms(median(runs));
  };
  const all = `over ${QUERY_EVENTS >= 1e6 ? `${QUERY_EVENTS / 1e6}M` : `${QUERY_EVENTS / 1e3}k`}`;
  await timed(`summary ${all}`, () => tollgate.events.getSummary());
  await timed(`breakdown by model ${all}`, () => tollgate.events.getBreakdown({ groupBy: 'model' }));
  await timed(`breakdown by customer ${all}`, () => tollgate.events.getBreakdown({ groupBy: 'customerId' }));
  await timed(`daily timeseries, 30 days ${all}`, () => tollgate.events.getTimeseries({ interval: 'day', startDate: new Date(start), endDate: new Date(start + 30 * DAY) }));
  await timed(`meter query (sum) ${all}`, () => tollgate.meters.query('tokens'));
  await timed('summary of one customer', () => tollgate.events.getSummary({ customerId: 'cus_42' }));
  await timed('list, first page of 100 (one customer)', () => tollgate.events.list({ customerId: 'cus_42', limit: 100 }));
  await timed('list, page 50 by cursor (all events)', async () => {
    let cursor;
    for (let p = 0; p < 50; p++) cursor = (await tollgate.events.list({ limit: 100, cursor })).nextCursor ?? undefined;
  });
  await tollgate.close();
  return out;
}

async function postgresReachable() {
  if (sqliteOnly) return false;
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch (error) {
    console.warn(`Postgres at ${POSTGRES_URL} is not reachable (${error.message}); benchmarking SQLite only.`);
    return false;
  }
}

async function dropSchema(schema) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}

async function analyze(schema) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`VACUUM ANALYZE "${schema}".events`);
  await client.end();
}

const columns = {};
const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-sql-'));
try {
  console.error(`SQLite (${quick ? 'quick' : 'full'})…`);
  columns.SQLite = {
    ...(await hotPath('sqlite', () => sqliteStore({ path: join(dir, 'hot.db') }))),
    ...(await queries('sqlite', () => sqliteStore({ path: join(dir, 'queries.db') }))),
  };
  if (await postgresReachable()) {
    const hot = `tollgate_bench_hot_${process.pid}`;
    const query = `tollgate_bench_queries_${process.pid}`;
    try {
      console.error(`Postgres (${quick ? 'quick' : 'full'})…`);
      columns.Postgres = {
        ...(await hotPath('postgres', () => postgresStore({ connectionString: POSTGRES_URL }, { schema: hot }))),
        ...(await queries('postgres', () => postgresStore({ connectionString: POSTGRES_URL }, { schema: query }), () => analyze(query))),
      };
    } finally {
      await dropSchema(hot);
      await dropSchema(query);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const names = Object.keys(columns);
const rows = [...new Set(names.flatMap((n) => Object.keys(columns[n])))];
console.log('# SQL stores\n');
table(['', ...names], rows.map((r) => [r, ...names.map((n) => columns[n][r] ?? '–')]));
console.log(`\n_${machine()}; ${quick ? `quick run, queries over ${QUERY_EVENTS.toLocaleString('en-US')} events` : 'full run'}. Latencies are sequential calls through createTollgate(); each SQLite write is one BEGIN IMMEDIATE transaction, each Postgres write one transaction of four round trips; the ledger and the counters are updated together._`);
