// In-process benchmarks of @tollgate/core on the memory store, next to rate-limiter-flexible's
// RateLimiterMemory and express-rate-limit's MemoryStore measured in the same run.
// Run: npm run build && node bench/core.mjs [--quick]
import { createTollgate } from '@tollgate/core';
import { MemoryStore as ErlMemoryStore } from 'express-rate-limit';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { duration, fmt, latency, machine, quick, table } from './lib/measure.mjs';

function engineWith(limitCount) {
  const meters = [
    { id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' },
    { id: 'requests', name: 'Requests', aggregation: 'count', field: '*' },
  ];
  const periods = ['minute', 'hour', 'day', 'week', 'month'];
  const limits = Array.from({ length: limitCount }, (_, i) => ({
    id: `limit-${i}`,
    name: `Limit ${i}`,
    meterId: i % 2 ? 'requests' : 'tokens',
    limitValue: 1e12,
    period: periods[i % periods.length],
  }));
  return createTollgate({ meters, limits });
}

console.log(`# @tollgate/core, memory store\n\n${machine()}${quick ? ' (quick run)' : ''}\n`);
const rows = [];
const customers = Array.from({ length: 1000 }, (_, i) => `cus_${i}`);

for (const n of [1, 5, 20]) {
  const tg = engineWith(n);
  for (const c of customers) await tg.events.record({ customerId: c, eventType: 'llm.completion', values: { tokens: 1 } });
  const r = await latency((i) => tg.limits.check({ customerId: customers[i % 1000], estimate: { tokens: 10 } }));
  rows.push([`check, ${n} applicable limit${n > 1 ? 's' : ''}`, fmt(r.median), `${fmt(r.p10)}–${fmt(r.p90)}`, fmt(r.opsPerSec, 0)]);
}

const rlf = new RateLimiterMemory({ points: 1e12, duration: 60 });
const rlfResult = await latency((i) => rlf.consume(customers[i % 1000], 1));
rows.push(['peer: rate-limiter-flexible RateLimiterMemory.consume', fmt(rlfResult.median), `${fmt(rlfResult.p10)}–${fmt(rlfResult.p90)}`, fmt(rlfResult.opsPerSec, 0)]);
const erl = new ErlMemoryStore();
erl.init({ windowMs: 60_000 });
const erlResult = await latency((i) => erl.increment(customers[i % 1000]));
rows.push(['peer: express-rate-limit MemoryStore.increment', fmt(erlResult.median), `${fmt(erlResult.p10)}–${fmt(erlResult.p90)}`, fmt(erlResult.opsPerSec, 0)]);

const tg5 = engineWith(5);
const rec = await latency((i) => tg5.events.record({ customerId: customers[i % 1000], eventType: 'llm.completion', values: { tokens: 3 }, dimensions: { model: 'm' } }));
rows.push(['record, 5 applicable limits', fmt(rec.median), `${fmt(rec.p10)}–${fmt(rec.p90)}`, fmt(rec.opsPerSec, 0)]);
const rc = await latency(async (i) => {
  const r = await tg5.reserve({ customerId: customers[i % 1000], eventType: 'llm.completion', estimate: { tokens: 10 } });
  await r.commit({ values: { tokens: 7 } });
});
rows.push(['reserve + commit, 5 applicable limits', fmt(rc.median), `${fmt(rc.p10)}–${fmt(rc.p90)}`, fmt(rc.opsPerSec, 0)]);
const tg1 = engineWith(1);
const rec1 = await latency((i) => tg1.events.record({ customerId: customers[i % 1000], eventType: 'llm.completion', values: { tokens: 3 } }));
rows.push(['record, 1 applicable limit', fmt(rec1.median), `${fmt(rec1.p10)}–${fmt(rec1.p90)}`, fmt(rec1.opsPerSec, 0)]);

table(['operation', 'median µs', 'p10–p90 µs', 'ops/s (sequential)'], rows);
console.log(`\ncheck (5 limits) vs RateLimiterMemory.consume: ${fmt(rows[1][1] / rlfResult.median)}× the latency`);

console.log('\n## Usage queries over N events (memory store)\n');
const qrows = [];
for (const size of quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]) {
  const tg = createTollgate();
  const base = Date.parse('2026-01-01T00:00:00Z');
  const models = ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'claude-haiku', 'llama'];
  for (let i = 0; i < size; i += 1000) {
    const events = [];
    for (let j = i; j < i + 1000; j++) {
      events.push({ customerId: `cus_${j % 500}`, eventType: 'llm.completion', values: { tokens: j % 997, cost: (j % 13) / 10 }, dimensions: { model: models[j % 5] }, timestamp: new Date(base + j * 1000) });
    }
    await tg.events.batchIngest({ events });
  }
  // The memory store keeps events in typed arrays: their ArrayBuffers count, next to the JS heap.
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  const heap = heapUsed + arrayBuffers;
  const s = await duration(() => tg.events.getSummary({}));
  const b = await duration(() => tg.events.getBreakdown({ groupBy: 'model' }));
  const sc = await duration(() => tg.events.getSummary({ customerId: 'cus_7' }));
  qrows.push([size.toLocaleString('en-US'), fmt(s.median), fmt(b.median), fmt(sc.median), `${fmt(heap / 2 ** 20, 0)} MiB heap + buffers`]);
}
table(['events', 'summary ms', 'breakdown by model ms', 'summary one customer ms', 'memory'], qrows);
