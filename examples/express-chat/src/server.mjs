// An Express chat API metered per customer with @tollgate/express. Start: npm start.
//   POST /chat  {"message": "..."}  → {"text", "usage"}   (header x-customer-id)
//   GET  /usage                     → the customer's summary and breakdown by model
import express from 'express';
import { generateText } from 'ai';
import { createTollgate } from '@tollgate/core';
import { meter } from '@tollgate/express';
import { chatModel } from './model.mjs';
import { storeFromEnv } from './store.mjs';

const tollgate = createTollgate({
  store: await storeFromEnv(),
  meters: [
    { id: 'tokens', name: 'LLM tokens', aggregation: 'sum', field: 'values.tokens', eventFilter: { eventType: 'llm.completion' } },
    { id: 'chat-requests', name: 'Chat requests', aggregation: 'count', field: '*', eventFilter: { eventType: 'llm.completion' } },
  ],
  limits: [
    // What to change first: your plans' numbers.
    { id: 'daily-tokens', name: 'Tokens per day', meterId: 'tokens', limitValue: Number(process.env.DAILY_TOKENS ?? 20_000), period: 'day', alertThresholds: [80] },
    { id: 'requests-per-minute', name: 'Chat requests per minute', meterId: 'chat-requests', limitValue: Number(process.env.REQUESTS_PER_MINUTE ?? 5), period: 'minute' },
  ],
  onAlert: (a) => console.log(`[alert] ${a.type} ${a.limitId} customer=${a.customerId} ${a.percentage}%`),
});
await tollgate.ready();
const model = await chatModel();

// Who is calling: replace with your auth (an API key lookup, a session, a JWT claim).
const customerId = (req) => req.header('x-customer-id');

const app = express();
app.use(express.json());

app.post(
  '/chat',
  meter(tollgate, {
    customerId,
    eventType: 'llm.completion',
    // Reserve a typical answer's tokens before calling the model; the real count replaces it.
    estimate: () => ({ tokens: 500 }),
    dimensions: () => ({ model: model.modelId }),
    standardHeaders: 'draft-7',
  }),
  async (req, res) => {
    const result = await generateText({ model, prompt: String(req.body?.message ?? 'Hello') });
    req.tollgate.add({ tokens: result.usage.totalTokens ?? 0 });
    res.json({ text: result.text, usage: result.usage });
  },
);

app.get('/usage', async (req, res) => {
  const id = customerId(req);
  if (!id) return res.status(401).json({ error: { code: 'customer_required', message: 'Send the customer in the x-customer-id header.' } });
  const [summary, byModel, limits] = await Promise.all([
    tollgate.events.getSummary({ customerId: id }),
    tollgate.events.getBreakdown({ customerId: id, groupBy: 'model' }),
    tollgate.limits.check({ customerId: id, eventType: 'llm.completion' }),
  ]);
  res.json({ customerId: id, summary, byModel: byModel.data, limits: limits.limits });
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`express-chat listening on http://127.0.0.1:${server.address().port} (store: ${process.env.TOLLGATE_STORE ?? 'memory'})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => tollgate.close().then(() => process.exit(0))));
}
