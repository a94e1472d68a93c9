// Redis hot path, one run on one server: a bare EVALSHA round trip, rate-limiter-flexible's
// RateLimiterRedis.consume, and Tollgate check and reserve+commit with redisCounters.
// Run: npm run build && TOLLGATE_REDIS_URL=redis://127.0.0.1:6379 node bench/redis.mjs [--quick]
import { createTollgate } from '@tollgate/core';
import { redisCounters } from '@tollgate/core/redis';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { fmt, latency, machine, median, quick, table } from './lib/measure.mjs';

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

async function throughput(fn, total, concurrency = 50) {
  let next = 0;
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) await fn(next++);
  }));
  return total / (Number(process.hrtime.bigint() - t) / 1e9);
}

// This machine's loopback latency jumps between states for seconds at a time (e.g. 20 µs and 60 µs
// per round trip), so rows timed one after another can land in different states and their ratios
// mean nothing. Each case therefore runs in short interleaved rounds; a row reports the median
// over rounds of its per-round figures, and each ratio is the median of the per-round ratios
// (against bare EVALSHA, and against the peer row above it, timed in the same round).
const rounds = quick ? 5 : 10;
const perRound = Math.ceil(iterations / rounds);
const tputPerRound = Math.max(perRound, 2_000);
for (const [, fn] of cases) for (let i = 0; i < 500; i++) await fn(i);
const results = cases.map(() => ({ median: [], samples: [], tput: [], vsBare: [], vsPeer: [] }));
for (let round = 0; round < rounds; round++) {
  let bare;
  let peer;
  for (const [c, [name, fn]] of cases.entries()) {
    const l = await latency(fn, { iterations: perRound, warmup: 50, warmupMs: 0 });
    const tput = await throughput(fn, tputPerRound);
    const r = results[c];
    r.median.push(l.median);
    r.samples.push(l.p10, l.p90);
    r.tput.push(tput);
    bare ??= l.median;
    if (name.startsWith('peer')) peer = tput; // each Tollgate row compares with the peer row above it
    r.vsBare.push(l.median / bare);
    if (peer) r.vsPeer.push(tput / peer);
  }
}
console.log(`# Redis counters\n\n${machine()}, Redis at ${url}${quick ? ' (quick run)' : ''}, ${rounds} interleaved rounds\n`);
const rows = cases.map(([name], c) => {
  const r = results[c];
  const p10 = median(r.samples.filter((_, i) => i % 2 === 0));
  const p90 = median(r.samples.filter((_, i) => i % 2 === 1));
  return [name, fmt(median(r.median)), `${fmt(p10)}–${fmt(p90)}`, `${fmt(median(r.vsBare))}×`, fmt(median(r.tput), 0), r.vsPeer.length ? `${fmt(median(r.vsPeer))}×` : ''];
});
table(['operation', 'median µs (sequential)', 'p10–p90 µs', 'vs bare EVALSHA', 'ops/s (50 concurrent)', 'vs rate-limiter-flexible'], rows);
console.log('\nTollgate check is one EVALSHA round trip; reserve + commit is two (reserve, then commit).');
console.log('Figures are medians over rounds (p10 and p90: medians of the per-round p10 and p90).');

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
