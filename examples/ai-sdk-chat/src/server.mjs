// A chat API metered per customer with @tollgate/ai. Start: npm start (PORT=3000 by default).
//   POST /chat         {"message": "..."}  → {"text", "usage"}      (header x-customer-id)
//   POST /chat/stream  {"message": "..."}  → text/plain stream
//   GET  /usage                              → the customer's summary and breakdown by model
import { createServer } from 'node:http';
import { TollgateError, createTollgate } from '@tollgate/core';
import { meteredAI } from '@tollgate/ai';
import { chatModel } from './model.mjs';
import { storeFromEnv } from './store.mjs';

const tollgate = createTollgate({
  store: await storeFromEnv(),
  meters: [
    { id: 'tokens', name: 'LLM tokens', aggregation: 'sum', field: 'values.totalTokens', eventFilter: { eventType: 'llm.completion' } },
    { id: 'chat-requests', name: 'Chat requests', aggregation: 'count', field: '*', eventFilter: { eventType: 'llm.completion' } },
  ],
  limits: [
    // What to change first: your plans' numbers.
    { id: 'daily-tokens', name: 'Tokens per day', meterId: 'tokens', limitValue: Number(process.env.DAILY_TOKENS ?? 20_000), period: 'day' },
    { id: 'requests-per-minute', name: 'Chat requests per minute', meterId: 'chat-requests', limitValue: Number(process.env.REQUESTS_PER_MINUTE ?? 5), period: 'minute' },
  ],
  onAlert: (a) => console.log(`[alert] ${a.type} ${a.limitId} customer=${a.customerId} ${a.percentage}%`),
});
await tollgate.ready();

const ai = meteredAI(tollgate, { model: await chatModel(), estimate: () => ({ inputTokens: 200, outputTokens: 300 }) });

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return raw ? JSON.parse(raw) : {};
}

function denied(res, error) {
  const headers = error.retryAfter ? { 'retry-after': String(error.retryAfter) } : {};
  json(res, 429, { error: { code: error.code, message: error.message, limits: error.limits ?? [] } }, headers);
}

const server = createServer(async (req, res) => {
  const customerId = req.headers['x-customer-id'];
  if (!customerId) return json(res, 401, { error: { code: 'missing_customer', message: 'Send the customer in the x-customer-id header.' } });
  try {
    if (req.method === 'POST' && req.url === '/chat') {
      const { message = 'Hello' } = await readJson(req);
      const result = await ai.generateText({ customerId, prompt: String(message) });
      return json(res, 200, { text: result.text, usage: result.usage });
    }
    if (req.method === 'POST' && req.url === '/chat/stream') {
      const { message = 'Hello' } = await readJson(req);
      const result = ai.streamText({ customerId, prompt: String(message) });
      for await (const part of result.fullStream) {
        if (part.type === 'error') {
          if (!res.headersSent && TollgateError.isInstance(part.error) && part.error.code === 'limit_exceeded') return denied(res, part.error);
          throw part.error;
        }
        if (part.type === 'text-delta') {
          if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
          res.write(part.text);
        }
      }
      return res.end();
    }
    if (req.method === 'GET' && req.url === '/usage') {
      const summary = await tollgate.events.getSummary({ customerId });
      const byModel = await tollgate.events.getBreakdown({ customerId, groupBy: 'model' });
      const limits = await tollgate.limits.check({ customerId, eventType: 'llm.completion' });
      return json(res, 200, { customerId, summary, byModel: byModel.data, limits: limits.limits });
    }
    return json(res, 404, { error: { code: 'not_found', message: `${req.method} ${req.url} is not a route here.` } });
  } catch (error) {
    if (TollgateError.isInstance(error) && error.code === 'limit_exceeded') return denied(res, error);
    console.error(error);
    if (!res.headersSent) return json(res, 500, { error: { code: 'internal', message: String(error?.message ?? error) } });
    res.end();
  }
});

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`ai-sdk-chat listening on http://127.0.0.1:${server.address().port} (store: ${process.env.TOLLGATE_STORE ?? 'memory'})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => tollgate.close().then(() => process.exit(0))));
}
