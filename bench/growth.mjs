// How cost grows with work: check latency as applicable limits grow 1 → 50 and customers
// 1 → 100k; memory held per event in the memory store. (Query time as events grow on each
// store is in core.mjs and sql.mjs.)
// Run: npm run build && node bench/growth.mjs [--quick]
import { createTollgate } from '@tollgate/core';
import { fmt, latency, machine, quick, table } from './lib/measure.mjs';

const meters = [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }];
const periods = ['minute', 'hour', 'day', 'week', 'month', '5m', 'annual', 'all_time'];
const limitsOf = (n) => Array.from({ length: n }, (_, i) => ({ id: `l${i}`, name: `L${i}`, meterId: 'tokens', limitValue: 1e12, period: periods[i % periods.length] }));


/** The JS heap in use plus ArrayBuffer memory (where the memory store keeps its event columns). */
const used = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

// Measured before anything else so the heap holds nothing but the store.
async function memoryHeld() {
  global.gc?.();
  const before = used();
  const tg = createTollgate({ meters, limits: limitsOf(2) });
  const n = quick ? 100_000 : 1_000_000;
  for (let i = 0; i < n; i += 1000) {
    await tg.events.batchIngest({
      events: Array.from({ length: 1000 }, (_, j) => ({ customerId: `c${(i + j) % 1000}`, eventType: 'llm.completion', values: { tokens: j, cost: 0.1 }, dimensions: { model: 'gpt-4o-mini' } })),
    });
  }
  global.gc?.();
  const held = used() - before;
  const rows = [[n.toLocaleString('en-US'), `${fmt(held / 2 ** 20, 0)} MiB`, `${fmt((held / n) * 1e6 / 2 ** 20, 0)} MiB`, fmt(held / n, 0)]];
  await tg.close();
  return rows;
}
const memoryRows = global.gc ? await memoryHeld() : null;

console.log(`# Growth\n\n${machine()}${quick ? ' (quick run)' : ''}\n\n## Check latency as applicable limits grow (1,000 customers)\n`);
const byLimits = [];
let base;
for (const n of [1, 5, 10, 20, 50]) {
  const tg = createTollgate({ meters, limits: limitsOf(n) });
  for (let c = 0; c < 1000; c++) await tg.events.record({ customerId: `c${c}`, eventType: 'x', values: { tokens: 1 } });
  const r = await latency((i) => tg.limits.check({ customerId: `c${i % 1000}`, estimate: { tokens: 1 } }), { iterations: quick ? 3000 : 20000 });
  base ??= r.median;
  byLimits.push([n, fmt(r.median), fmt(r.median / n), `${fmt(r.median / base)}×`]);
}
table(['applicable limits', 'median µs', 'µs per limit', 'vs 1 limit'], byLimits);

console.log('\n## Check latency as customers grow (5 limits)\n');
const byCustomers = [];
let first;
for (const n of quick ? [1, 1000, 10_000] : [1, 1000, 10_000, 100_000]) {
  const tg = createTollgate({ meters, limits: limitsOf(5) });
  for (let c = 0; c < n; c += 1000) {
    await tg.events.batchIngest({ events: Array.from({ length: Math.min(1000, n - c) }, (_, j) => ({ customerId: `c${c + j}`, eventType: 'x', values: { tokens: 1 } })) });
  }
  for (let c = 0; c < n; c++) await tg.limits.check({ customerId: `c${c}` }); // every customer's counters exist
  const r = await latency((i) => tg.limits.check({ customerId: `c${(i * 7919) % n}`, estimate: { tokens: 1 } }), { iterations: quick ? 3000 : 20000 });
  first ??= r.median;
  byCustomers.push([n.toLocaleString('en-US'), fmt(r.median), `${fmt(r.median / first)}×`]);
}
table(['customers with counters', 'median µs', 'vs 1 customer'], byCustomers);

console.log('\n## Memory held by the memory store (measured first, on a fresh heap)\n');
if (memoryRows) table(['events', 'heap + array buffers held', 'per 1M events (extrapolated)', 'bytes per event'], memoryRows);
else console.log('Run with node --expose-gc to measure memory.');
