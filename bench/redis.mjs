// Redis hot path, one run on one server: a bare EVALSHA round trip, rate-limiter-flexible's
// RateLimiterRedis.consume, and Tollgate check and reserve+commit with redisCounters.
// Run: npm run build && TOLLGATE_REDIS_URL=redis://127.0.0.1:6379 node bench/redis.mjs [--quick]
import { createTollgate } from '@tollgate/core';
import { redisCounters } from '@tollgate/core/redis';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { fmt, latency, machine, quick, table } from './lib/measure.mjs';

const url = process.env.TOLLGATE_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `tollgate-bench:${process.pid}:`;
const client = new Redis(url);
const iterations = quick ? 3_000 : 20_000;

const customers = Array.from({ length: 100 }, (_, i) => `cus_${i}`);
const tollgate = createTollgate({
  counters: redisCounters({ client, prefix }),
  meters: [
    { id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' },
    { id: 'requests', name: 'Requests', aggregation: 'count', field: '*' },
  ],
  limits: [
    { id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 1e12, period: 'minute' },
    { id: 'daily', name: 'Daily tokens', meterId: 'tokens', limitValue: 1e12, period: 'day' },
  ],
});
for (const c of customers) await tollgate.events.record({ customerId: c, eventType: 'x', values: { tokens: 1 } });

const sha = await client.script('LOAD', "return redis.call('INCRBY', KEYS[1], ARGV[1])");
const rlf = new RateLimiterRedis({ storeClient: client, keyPrefix: `${prefix}rlf`, points: 1e12, duration: 60 });

// The same decisions on a client with ioredis auto-pipelining, which batches concurrent commands
// into one write: slower alone (a tick of delay), faster under concurrency.
const piped = new Redis(url, { enableAutoPipelining: true });
const tollgatePiped = createTollgate({
  counters: redisCounters({ client: piped, prefix }),
  meters: [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }, { id: 'requests', name: 'Requests', aggregation: 'count', field: '*' }],
  limits: [
    { id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 1e12, period: 'minute' },
    { id: 'daily', name: 'Daily tokens', meterId: 'tokens', limitValue: 1e12, period: 'day' },
  ],
});
const rlfPiped = new RateLimiterRedis({ storeClient: piped, keyPrefix: `${prefix}rlfp`, points: 1e12, duration: 60 });

const cases = [
  ['bare EVALSHA (INCRBY)', (i) => client.evalsha(sha, 1, `${prefix}bare:{${customers[i % 100]}}`, '1')],
  ['peer: rate-limiter-flexible RateLimiterRedis.consume', (i) => rlf.consume(customers[i % 100], 1)],
  ['Tollgate check (2 limits)', (i) => tollgate.limits.check({ customerId: customers[i % 100], estimate: { tokens: 5 } })],
  ['Tollgate reserve + commit (2 limits)', async (i) => {
    const r = await tollgate.reserve({ customerId: customers[i % 100], eventType: 'x', estimate: { tokens: 5 } });
    await r.commit({ values: { tokens: 4 } });
  }],
  ['peer, auto-pipelined client: RateLimiterRedis.consume', (i) => rlfPiped.consume(customers[i % 100], 1)],
  ['Tollgate check, auto-pipelined client', (i) => tollgatePiped.limits.check({ customerId: customers[i % 100], estimate: { tokens: 5 } })],
];

async function throughput(fn, concurrency = 50) {
  let next = 0;
  const total = iterations;
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) await fn(next++);
  }));
  return total / (Number(process.hrtime.bigint() - t) / 1e9);
}

console.log(`# Redis counters\n\n${machine()}, Redis at ${url}${quick ? ' (quick run)' : ''}\n`);
const rows = [];
let bare;
let peer;
for (const [name, fn] of cases) {
  const l = await latency(fn, { iterations, warmup: 500 });
  const tput = await throughput(fn);
  bare ??= l.median;
  if (name.startsWith('peer')) peer = tput; // each Tollgate row compares with the peer row above it
  rows.push([name, fmt(l.median), `${fmt(l.p10)}–${fmt(l.p90)}`, `${fmt(l.median / bare)}×`, fmt(tput, 0), peer ? `${fmt(tput / peer)}×` : '']);
}
table(['operation', 'median µs (sequential)', 'p10–p90 µs', 'vs bare EVALSHA', 'ops/s (50 concurrent)', 'vs rate-limiter-flexible'], rows);
console.log('\nTollgate check is one EVALSHA round trip; reserve + commit is two (reserve, then commit).');

let cursor = '0';
do {
  const [nextCursor, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
  if (keys.length) await client.del(...keys);
  cursor = nextCursor;
} while (cursor !== '0');
await tollgate.close();
await tollgatePiped.close();
await client.quit();
await piped.quit();
