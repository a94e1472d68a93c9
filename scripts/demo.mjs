// The scripted tour behind `npm run demo`: the memory store, no network, about a second.
import { createTollgate } from '@tollgate/core';

const start = Date.parse('2026-11-26T09:00:00Z');
let clock = start;
const fmt = (d) => `allowed=${String(d.allowed).padEnd(5)} ${d.limits.map((l) => `${l.limitId}: ${l.used}/${l.limit} used, ${l.remaining} left, resets ${new Date(l.reset * 1000).toISOString().slice(11, 19)}Z`).join(' | ')}`;
const say = (text) => console.log(`\n${text}`);

const tollgate = createTollgate({
  now: () => clock,
  meters: [
    { id: 'tokens', name: 'LLM tokens', aggregation: 'sum', field: 'values.tokens' },
    { id: 'requests', name: 'Chat requests', aggregation: 'count', field: '*', eventFilter: { eventType: 'llm.completion' } },
  ],
  limits: [
    { id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1_000, period: 'day', alertThresholds: [80] },
    { id: 'requests-per-minute', name: 'Requests per minute', meterId: 'requests', limitValue: 3, period: 'minute' },
  ],
  onAlert: (a) => console.log(`  alert → ${a.type} ${a.limitId} for ${a.customerId} at ${a.percentage}%`),
});

await tollgate.customers.create({ id: 'acme', name: 'Acme Corp', timezone: 'Europe/Berlin' });
await tollgate.customers.create({ id: 'globex', name: 'Globex', timezone: 'America/New_York' });
console.log('Tollgate demo — check before, record after (memory store)');
console.log('Limits: 1,000 tokens per day (customer timezone) and 3 chat requests per minute.');

say('1. acme makes requests until the per-minute limit answers no:');
for (let i = 1; i <= 4; i++) {
  const decision = await tollgate.limits.check({ customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 100 } });
  console.log(`  request ${i}: ${fmt(decision)}`);
  if (decision.allowed) {
    await tollgate.events.record({ customerId: 'acme', eventType: 'llm.completion', values: { tokens: 100 }, dimensions: { model: i % 2 ? 'gpt-4o-mini' : 'claude-haiku' } });
  }
}

say('2. globex is counted separately:');
console.log(`  ${fmt(await tollgate.limits.check({ customerId: 'globex', eventType: 'llm.completion' }))}`);

say('3. a minute later the request window has reset; acme spends most of its daily tokens:');
clock += 60_000;
await tollgate.events.record({ customerId: 'acme', eventType: 'llm.completion', values: { tokens: 695 }, dimensions: { model: 'gpt-4o-mini' } });
console.log(`  ${fmt(await tollgate.limits.check({ customerId: 'acme', eventType: 'llm.completion' }))}`);

say('4. 20 concurrent batch jobs reserve 1 token each, racing for the last 5 tokens:');
const racing = await Promise.all(
  Array.from({ length: 20 }, () => tollgate.reserve({ customerId: 'acme', eventType: 'llm.batch', estimate: { tokens: 1 }, dimensions: { model: 'claude-haiku' } })),
);
const won = racing.filter((r) => r.allowed);
console.log(`  ${won.length} allowed, ${racing.length - won.length} denied (exactly as many as fit)`);
await Promise.all(won.map((r) => r.commit({ values: { tokens: 1 } })));
console.log(`  after commit: ${fmt(await tollgate.limits.check({ customerId: 'acme', eventType: 'llm.batch' }))}`);

say('5. what did it cost? summary and breakdown by model for acme:');
const summary = await tollgate.events.getSummary({ customerId: 'acme' });
console.log(`  ${summary.totalEvents} events, ${summary.values.tokens} tokens`);
for (const row of (await tollgate.events.getBreakdown({ customerId: 'acme', groupBy: 'model' })).data) {
  console.log(`  ${String(row.dimension).padEnd(14)} ${String(row.totalEvents).padStart(3)} events ${String(row.values.tokens).padStart(5)} tokens`);
}
await tollgate.close();
console.log("\nDone. Read README.md for the API.");
