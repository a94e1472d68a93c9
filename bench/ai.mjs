// What @tollgate/ai adds to one model call: the built package on a mock model, wrapped vs
// unwrapped, memory store, one applicable limit. Run after `npm run build`:
//   node bench/ai.mjs          (about 20 s)
//   node bench/ai.mjs --quick  (about 3 s)
// Each round times a batch of calls of both kinds, interleaved so drift hits both alike; the
// figure is the median over rounds of (wrapped − unwrapped) per call.
import { performance } from 'node:perf_hooks';
import { createTollgate } from '@tollgate/core';
import { tollgateMiddleware } from '@tollgate/ai';
import { generateText, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4, convertArrayToReadableStream } from 'ai/test';
import { median } from './lib/measure.mjs';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 15 : 60;
const BATCH = quick ? 100 : 250;
const WARMUP = quick ? 1500 : 3000;
const CUSTOMERS = 50;

const usage = { inputTokens: { total: 25, noCache: 25, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 12, text: 12, reasoning: 0 } };
const finishReason = { unified: 'stop', raw: 'stop' };
const result = { content: [{ type: 'text', text: 'Hello from the mock model.' }], finishReason, usage, warnings: [] };
const chunks = [
  { type: 'stream-start', warnings: [] },
  { type: 'text-start', id: 't' },
  ...['Hello', ' from', ' the', ' mock', ' model.'].map((delta) => ({ type: 'text-delta', id: 't', delta })),
  { type: 'text-end', id: 't' },
  { type: 'finish', finishReason, usage },
];
const mock = new MockLanguageModelV4({
  doGenerate: async () => result,
  doStream: async () => ({ stream: convertArrayToReadableStream(chunks) }),
});
// The mock keeps every call's options; drop them so memory stays flat over the run.
const forget = () => {
  mock.doGenerateCalls.length = 0;
  mock.doStreamCalls.length = 0;
};

const tollgate = createTollgate({
  meters: [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.totalTokens', eventFilter: { eventType: 'llm.completion' } }],
  limits: [{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1e15, period: 'day' }],
});
await tollgate.ready();
const wrapped = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate) });

const prompt = [{ role: 'user', content: [{ type: 'text', text: 'Say hello in five words.' }] }];
let n = 0;
const customer = () => `cus_${n++ % CUSTOMERS}`;
const params = () => ({ prompt, maxOutputTokens: 64, providerOptions: { tollgate: { customerId: customer() } } });

async function drain(stream) {
  const reader = stream.getReader();
  while (!(await reader.read()).done);
}

// Both sides get the same arguments (the plain mock ignores providerOptions), so only the wrapper differs.
const scenarios = {
  'doGenerate (model call only)': {
    plain: () => mock.doGenerate(params()),
    metered: () => wrapped.doGenerate(params()),
  },
  'doStream + read to end': {
    plain: async () => drain((await mock.doStream(params())).stream),
    metered: async () => drain((await wrapped.doStream(params())).stream),
  },
  'generateText (whole SDK call)': {
    plain: () => generateText({ model: mock, prompt: 'Say hello in five words.', maxOutputTokens: 64, providerOptions: { tollgate: { customerId: customer() } } }),
    metered: () => generateText({ model: wrapped, prompt: 'Say hello in five words.', maxOutputTokens: 64, providerOptions: { tollgate: { customerId: customer() } } }),
  },
  'streamText + consume': {
    plain: () => streamText({ model: mock, prompt: 'Say hello in five words.', providerOptions: { tollgate: { customerId: customer() } } }).consumeStream(),
    metered: () => streamText({ model: wrapped, prompt: 'Say hello in five words.', providerOptions: { tollgate: { customerId: customer() } } }).consumeStream(),
  },
};

async function timeBatch(fn) {
  const start = performance.now();
  for (let i = 0; i < BATCH; i++) await fn();
  const perCall = ((performance.now() - start) * 1000) / BATCH;
  forget();
  return perCall;
}

// Let the engine's hot path reach optimised code once, so the first scenario is not penalised.
for (let i = 0; i < 10_000; i++) await scenarios['doGenerate (model call only)'].metered();
forget();

const rows = [];
for (const [name, { plain, metered }] of Object.entries(scenarios)) {
  for (let i = 0; i < WARMUP; i++) {
    await plain();
    await metered();
  }
  forget();
  const plainTimes = [];
  const meteredTimes = [];
  const added = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first so neither always runs on a warmer cache.
    let p, m;
    if (r % 2) {
      m = await timeBatch(metered);
      p = await timeBatch(plain);
    } else {
      p = await timeBatch(plain);
      m = await timeBatch(metered);
    }
    plainTimes.push(p);
    meteredTimes.push(m);
    added.push(m - p);
  }
  rows.push({ scenario: name, 'unwrapped µs': median(plainTimes).toFixed(1), 'wrapped µs': median(meteredTimes).toFixed(1), 'added µs (median)': median(added).toFixed(1) });
}

const events = await tollgate.events.getSummary({ eventType: 'llm.completion' });
console.log(`@tollgate/ai overhead per model call — memory store, 1 limit, ${CUSTOMERS} customers, ${ROUNDS} rounds × ${BATCH} calls${quick ? ' (quick)' : ''}, Node ${process.version}`);
console.table(rows);
console.log(`events recorded: ${events.totalEvents}; target: ≤ 50 µs added per call`);
await tollgate.close();
