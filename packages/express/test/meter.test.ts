import http from 'node:http';
import { createTollgate, TollgateError, type CreateLimitInput, type Tollgate } from '@tollgate/core';
import { meter, type MeterOptions } from '@tollgate/express';
import express5 from 'express';
import express4 from 'express4';
import request from 'supertest';
import { clearOfWindowEnd } from '@tollgate/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { afterResponse, close, deferred, flakyStore, listen, recorded, usage, waitForEvents } from './helpers.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      user?: { orgId: string };
    }
  }
}

const meters = [
  { id: 'requests', name: 'Requests', aggregation: 'count' as const, field: '*' },
  { id: 'chat-requests', name: 'Chat requests', aggregation: 'count' as const, field: '*', eventFilter: { eventType: 'llm.completion' } },
  { id: 'tokens', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' },
];

function tollgateWith(limits: CreateLimitInput[], extra: Parameters<typeof createTollgate>[0] = {}): Tollgate {
  return createTollgate({ meters, limits, ...extra });
}

const byHeader: MeterOptions['customerId'] = (req) => req.header('x-customer-id');

describe.each([
  ['Express 5', express5],
  ['Express 4', express4],
])('meter() on %s', (_name, express) => {
  let tollgate: Tollgate;
  let server: (http.Server & { url: string }) | undefined;

  // Most tests count requests under a per-minute limit on the real clock.
  beforeEach(() => clearOfWindowEnd());

  afterEach(async () => {
    await close(server);
    server = undefined;
    await tollgate?.close();
  });

  it('lets requests through until a request-count limit is used, then answers 429 without calling the handler', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 2, period: 'minute' }]);
    const handler = vi.fn((_req, res) => res.json({ ok: true }));
    const app = express();
    app.get('/items', meter(tollgate, { customerId: byHeader }), handler);
    server = await listen(app);

    await request(server).get('/items').set('x-customer-id', 'acme').expect(200, { ok: true });
    await waitForEvents(tollgate, 'acme', 1);
    await request(server).get('/items').set('x-customer-id', 'acme').expect(200);
    await waitForEvents(tollgate, 'acme', 2);
    const denied = await request(server).get('/items').set('x-customer-id', 'acme').expect(429).expect('content-type', /json/);

    expect(handler).toHaveBeenCalledTimes(2);
    expect(denied.body.error.code).toBe('limit_exceeded');
    expect(denied.body.error.message).toMatch(/Requests per minute/);
    expect(denied.body.error.limits).toEqual([expect.objectContaining({ limitId: 'rpm', limit: 2, used: 2, remaining: 0, exceeded: true, allowed: false })]);
    expect(Number(denied.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(denied.headers['retry-after'])).toBeLessThanOrEqual(60);
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(2); // the denied request records nothing
    // Another customer has their own count.
    await request(server).get('/items').set('x-customer-id', 'globex').expect(200);
  });

  it('on the memory store decides without waiting: the handler runs in the tick the request reached the meter', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 100, period: 'minute' }]);
    await tollgate.ready();
    await tollgate.limits.check({ customerId: 'acme' }); // the customer's context is cached from here on
    const app = express();
    // A middleware in front notes when control came back to it from next(): after the handler ran, or before.
    app.get('/items', (req, res, next) => {
      next();
      res.locals.returned = true;
    }, meter(tollgate, { customerId: byHeader }), (_req, res) => res.json({ sameTick: res.locals.returned !== true, tokens: typeof _req.tollgate?.add }));
    server = await listen(app);
    await request(server).get('/items').set('x-customer-id', 'acme').expect(200, { sameTick: true, tokens: 'function' });
    await waitForEvents(tollgate, 'acme', 1);
    // A store that must be waited for still works, a tick later.
    const flaky = flakyStore();
    const slow = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 100, period: 'minute' }], { store: flaky.store });
    const app2 = express();
    app2.get('/items', (req, res, next) => {
      next();
      res.locals.returned = true;
    }, meter(slow, { customerId: byHeader }), (_req, res) => res.json({ sameTick: res.locals.returned !== true }));
    const server2 = await listen(app2);
    await request(server2).get('/items').set('x-customer-id', 'acme').expect(200, { sameTick: false });
    await waitForEvents(slow, 'acme', 1);
    await close(server2);
    await slow.close();
  });

  it('keeps per-route limits apart: a used-up chat limit leaves other routes open', async () => {
    tollgate = tollgateWith([{ id: 'chat-per-minute', name: 'Chats per minute', meterId: 'chat-requests', limitValue: 1, period: 'minute' }]);
    const app = express();
    app.post('/chat', meter(tollgate, { customerId: byHeader, eventType: 'llm.completion' }), (_req, res) => res.json({ reply: 'hi' }));
    app.get('/profile', meter(tollgate, { customerId: byHeader, eventType: 'profile.read' }), (_req, res) => res.json({ name: 'Acme' }));
    server = await listen(app);

    await request(server).post('/chat').set('x-customer-id', 'acme').expect(200);
    await waitForEvents(tollgate, 'acme', 1);
    await request(server).post('/chat').set('x-customer-id', 'acme').expect(429);
    await request(server).get('/profile').set('x-customer-id', 'acme').expect(200);
    await request(server).get('/profile').set('x-customer-id', 'acme').expect(200);
    const events = await waitForEvents(tollgate, 'acme', 3);
    expect(events.map((e) => e.eventType).sort()).toEqual(['llm.completion', 'profile.read', 'profile.read']);
  });

  it('meters a token limit: reserves the estimate, records the tokens the handler reports', async () => {
    tollgate = tollgateWith([{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
    const heldAtStart: number[] = [];
    const app = express();
    app.use(express.json());
    app.post(
      '/chat',
      meter(tollgate, { customerId: byHeader, eventType: 'llm.completion', estimate: (req) => ({ tokens: req.body.max_tokens }) }),
      (req, res) => {
        heldAtStart.push(req.tollgate!.decision.limits[0].used);
        req.tollgate!.add({ tokens: 120 });
        req.tollgate!.add({ tokens: 80 });
        req.tollgate!.setDimensions({ model: 'small' });
        res.json({ text: 'hello' });
      },
    );
    server = await listen(app);

    await request(server).post('/chat').set('x-customer-id', 'acme').send({ max_tokens: 900 }).expect(200);
    const [event] = await waitForEvents(tollgate, 'acme', 1);
    expect(event.values).toEqual({ tokens: 200 });
    expect(event.dimensions).toEqual({ model: 'small' });
    expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 200 });
    // 200 used: an estimate of 900 no longer fits, 800 does.
    const denied = await request(server).post('/chat').set('x-customer-id', 'acme').send({ max_tokens: 900 }).expect(429);
    expect(denied.body.error.limits[0]).toMatchObject({ used: 200, limit: 1000 });
    await request(server).post('/chat').set('x-customer-id', 'acme').send({ max_tokens: 800 }).expect(200);
    expect(heldAtStart).toEqual([900, 1000]); // the decision counts the request's own hold
  });

  it('reads values(req, res) when the response finishes and fills unreported keys from the estimate', async () => {
    tollgate = tollgateWith([{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
    const app = express();
    app.get(
      '/report',
      meter(tollgate, {
        customerId: byHeader,
        estimate: { tokens: 100, pages: 1 },
        dimensions: (req) => ({ format: String(req.query.format ?? 'pdf') }),
        values: (_req, res) => ({ tokens: res.locals.tokens }),
      }),
      (_req, res) => {
        res.locals.tokens = 64;
        res.send('report');
      },
    );
    server = await listen(app);
    await request(server).get('/report?format=csv').set('x-customer-id', 'acme').expect(200, 'report');
    const [event] = await waitForEvents(tollgate, 'acme', 1);
    expect(event).toMatchObject({ eventType: 'http.request', values: { tokens: 64, pages: 1 }, dimensions: { format: 'csv' } });
  });

  it('takes the customer from an auth middleware, and answers 401 JSON when there is none', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 5, period: 'minute' }]);
    const app = express();
    app.use((req, _res, next) => {
      const token = req.header('authorization');
      if (token === 'Bearer acme-key') req.user = { orgId: 'org_acme' };
      next();
    });
    const handler = vi.fn((_req, res) => res.json({ ok: true }));
    app.get('/me', meter(tollgate, { customerId: (req) => req.user?.orgId }), handler);
    server = await listen(app);

    await request(server).get('/me').set('authorization', 'Bearer acme-key').expect(200);
    await waitForEvents(tollgate, 'org_acme', 1);
    const anonymous = await request(server).get('/me').expect(401);
    expect(anonymous.body).toEqual({ error: { code: 'customer_required', message: expect.stringMatching(/customer/) } });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it('lets onMissingCustomer and onLimitExceeded answer instead', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 1, period: 'minute' }]);
    const app = express();
    app.get(
      '/x',
      meter(tollgate, {
        customerId: byHeader,
        onMissingCustomer: (_req, res) => res.status(403).json({ error: 'API key required' }),
        onLimitExceeded: (_req, res, _next, decision) => res.status(402).json({ upgrade: true, used: decision.limits[0].used }),
      }),
      (_req, res) => res.send('ok'),
    );
    server = await listen(app);
    await request(server).get('/x').expect(403, { error: 'API key required' });
    await request(server).get('/x').set('x-customer-id', 'acme').expect(200);
    await waitForEvents(tollgate, 'acme', 1);
    const denied = await request(server).get('/x').set('x-customer-id', 'acme').expect(402, { upgrade: true, used: 1 });
    expect(denied.headers['retry-after']).toBeDefined(); // set before the handler is called
  });

  it('lets onLimitExceeded pass a denied request on with next()', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 1, period: 'minute' }]);
    const app = express();
    app.get('/x', meter(tollgate, { customerId: byHeader, onLimitExceeded: (_req, _res, next) => next() }), (req, res) => res.json({ degraded: !req.tollgate }));
    server = await listen(app);
    await request(server).get('/x').set('x-customer-id', 'acme').expect(200, { degraded: false });
    await waitForEvents(tollgate, 'acme', 1);
    await request(server).get('/x').set('x-customer-id', 'acme').expect(200, { degraded: true });
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(1);
  });

  describe('headers', () => {
    const limits: CreateLimitInput[] = [
      { id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 10, period: 'minute' },
      { id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' },
    ];

    async function first(options: Partial<MeterOptions>) {
      tollgate = tollgateWith(limits);
      await tollgate.events.record({ customerId: 'acme', eventType: 'x', values: { tokens: 950 } });
      const app = express();
      app.get('/x', meter(tollgate, { customerId: byHeader, ...options }), (_req, res) => res.send('ok'));
      server = await listen(app);
      return request(server).get('/x').set('x-customer-id', 'acme').expect(200);
    }

    it('draft-6 by default, for the most constrained limit', async () => {
      const res = await first({});
      // 50 of 1000 tokens left (5%) is tighter than 9 of 10 requests (90%).
      expect(res.headers['ratelimit-limit']).toBe('1000');
      expect(res.headers['ratelimit-remaining']).toBe('50');
      expect(res.headers['ratelimit-policy']).toBe('1000;w=86400');
      expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
      expect(Number(res.headers['ratelimit-reset'])).toBeLessThanOrEqual(86400);
      expect(res.headers.ratelimit).toBeUndefined();
      expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    });

    it('draft-7', async () => {
      const res = await first({ standardHeaders: 'draft-7' });
      expect(res.headers.ratelimit).toMatch(/^limit=1000, remaining=50, reset=\d+$/);
      expect(res.headers['ratelimit-policy']).toBe('1000;w=86400');
      expect(res.headers['ratelimit-limit']).toBeUndefined();
    });

    it('draft-8 names every hard limit', async () => {
      const res = await first({ standardHeaders: 'draft-8' });
      expect(res.headers['ratelimit-policy']).toBe('"daily-tokens";q=1000;w=86400, "rpm";q=10;w=60');
      expect(res.headers.ratelimit).toMatch(/^"daily-tokens";r=50;t=\d+, "rpm";r=9;t=\d+$/);
    });

    it('legacy X-RateLimit-* on request, and none at all with standardHeaders: false', async () => {
      const legacy = await first({ standardHeaders: false, legacyHeaders: true });
      expect(legacy.headers['x-ratelimit-limit']).toBe('1000');
      expect(legacy.headers['x-ratelimit-remaining']).toBe('50');
      expect(Number(legacy.headers['x-ratelimit-reset'])).toBeGreaterThan(Date.now() / 1000);
      expect(legacy.headers['ratelimit-limit']).toBeUndefined();
      await close(server);
      await tollgate.close();
      const none = await first({ standardHeaders: false });
      expect(Object.keys(none.headers).filter((h) => h.includes('ratelimit'))).toEqual([]);
    });

    it('sends the headers and Retry-After on the 429', async () => {
      tollgate = tollgateWith([limits[0]]);
      const app = express();
      app.get('/x', meter(tollgate, { customerId: byHeader, standardHeaders: 'draft-7' }), (_req, res) => res.send('ok'));
      server = await listen(app);
      for (let i = 0; i < 10; i++) await tollgate.events.record({ customerId: 'acme', eventType: 'x' });
      const res = await request(server).get('/x').set('x-customer-id', 'acme').expect(429);
      const reset = Number(/reset=(\d+)/.exec(res.headers.ratelimit)![1]);
      expect(res.headers.ratelimit).toBe(`limit=10, remaining=0, reset=${reset}`);
      expect(Number(res.headers['retry-after'])).toBe(Math.max(1, reset));
    });
  });

  describe('concurrency', () => {
    it('N concurrent requests for the last units of a request-count limit: exactly as many 2xx as fit', async () => {
      tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 10, period: 'minute' }]);
      for (let i = 0; i < 7; i++) await tollgate.events.record({ customerId: 'acme', eventType: 'x' });
      const app = express();
      app.get('/x', meter(tollgate, { customerId: byHeader, estimate: {} }), async (_req, res) => {
        await new Promise((r) => setTimeout(r, 5));
        res.send('ok');
      });
      server = await listen(app);
      const results = await Promise.all(Array.from({ length: 25 }, () => request(server!).get('/x').set('x-customer-id', 'acme')));
      expect(results.filter((r) => r.status === 200)).toHaveLength(3);
      expect(results.filter((r) => r.status === 429)).toHaveLength(22);
      await waitForEvents(tollgate, 'acme', 10);
      expect(await usage(tollgate, 'acme')).toEqual({ rpm: 10 });
    });

    it('N concurrent requests for the last tokens: exactly as many 2xx as fit', async () => {
      tollgate = tollgateWith([{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
      await tollgate.events.record({ customerId: 'acme', eventType: 'llm.completion', values: { tokens: 550 } });
      const app = express();
      app.post('/chat', meter(tollgate, { customerId: byHeader, eventType: 'llm.completion', estimate: { tokens: 100 } }), async (_req, res) => {
        await new Promise((r) => setTimeout(r, 5));
        res.json({ ok: true });
      });
      server = await listen(app);
      const results = await Promise.all(Array.from({ length: 20 }, () => request(server!).post('/chat').set('x-customer-id', 'acme')));
      expect(results.filter((r) => r.status === 200)).toHaveLength(4);
      await waitForEvents(tollgate, 'acme', 5);
      expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 950 });
    });
  });

  it('a throwing handler records nothing and releases its hold', async () => {
    tollgate = tollgateWith([{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
    const app = express();
    app.post('/sync', meter(tollgate, { customerId: byHeader, estimate: { tokens: 600 } }), () => {
      throw new Error('model provider down');
    });
    app.post('/async', meter(tollgate, { customerId: byHeader, estimate: { tokens: 600 } }), (_req, _res, next) => {
      Promise.reject(new Error('model provider down')).catch(next);
    });
    app.use((_err: Error, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
      res.status(502).json({ error: 'upstream' });
    });
    server = await listen(app);
    await request(server).post('/sync').set('x-customer-id', 'acme').expect(502);
    await request(server).post('/async').set('x-customer-id', 'acme').expect(502);
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(0);
    expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 0 }); // holds released, else 600 would still be held
  });

  it('recordWhen decides which answers are charged', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 100, period: 'minute' }]);
    const app = express();
    app.get('/default/:status', meter(tollgate, { customerId: byHeader }), (req, res) => res.sendStatus(Number(req.params.status)));
    app.get('/all/:status', meter(tollgate, { customerId: () => 'all', recordWhen: () => true }), (req, res) => res.sendStatus(Number(req.params.status)));
    server = await listen(app);
    for (const status of [200, 201, 304, 404, 500]) {
      await request(server).get(`/default/${status}`).set('x-customer-id', 'acme');
      await request(server).get(`/all/${status}`);
    }
    await waitForEvents(tollgate, 'all', 5);
    await waitForEvents(tollgate, 'acme', 3); // 404 and 500 are not recorded by default
  });

  it('recordWhen may answer with a promise', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 100, period: 'minute' }]);
    const app = express();
    app.get('/:status', meter(tollgate, { customerId: byHeader, recordWhen: async (_req, res) => res.statusCode < 400 }), (req, res) => res.sendStatus(Number(req.params.status)));
    server = await listen(app);
    for (const status of [500, 200, 404]) await request(server).get(`/${status}`).set('x-customer-id', 'acme').expect(status);
    await waitForEvents(tollgate, 'acme', 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(await recorded(tollgate, 'acme')).toHaveLength(1); // the 500 and the 404 are not charged
  });

  it('answers 400 naming the field when a callback gives a value Tollgate rejects, and records nothing', async () => {
    tollgate = tollgateWith([{ id: 'tpd', name: 'Tokens per day', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
    const app = express();
    app.use(express.json());
    app.post('/chat', meter(tollgate, {
      customerId: byHeader,
      eventType: 'llm.completion',
      dimensions: (req) => ({ model: req.body.model }),
      estimate: (req) => ({ tokens: req.body.max_tokens }),
    }), (_req, res) => res.json({ ok: true }));
    server = await listen(app);
    const missing = await request(server).post('/chat').set('x-customer-id', 'acme').send({ max_tokens: 10 }).expect(400).expect('content-type', /json/);
    expect(missing.body.error).toMatchObject({ code: 'invalid_request', issues: [{ path: 'dimensions.model' }] });
    expect(missing.body.error.message).toMatch(/^This request cannot be metered: dimensions\.model: /);
    const text = await request(server).post('/chat').set('x-customer-id', 'acme').send({ model: 'gpt', max_tokens: '10' }).expect(400);
    expect(text.body.error.issues).toEqual([expect.objectContaining({ path: 'estimate.tokens' })]);
    await request(server).post('/chat').set('x-customer-id', 'acme').send({ model: 'gpt', max_tokens: 10 }).expect(200);
    await waitForEvents(tollgate, 'acme', 1);
    expect((await recorded(tollgate, 'acme')).map((e) => e.values)).toEqual([{ tokens: 10 }]);
  });

  it('req.tollgate.skip() records nothing and frees the hold', async () => {
    tollgate = tollgateWith([{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
    const app = express();
    app.get('/cached', meter(tollgate, { customerId: byHeader, estimate: { tokens: 700 } }), (req, res) => {
      req.tollgate!.skip(); // served from cache: free
      res.send('cached');
    });
    server = await listen(app);
    await request(server).get('/cached').set('x-customer-id', 'acme').expect(200);
    await request(server).get('/cached').set('x-customer-id', 'acme').expect(200);
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(0);
    expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 0 });
  });

  describe('a client that disconnects early', () => {
    function abortAfter(url: string, started: Promise<void>): Promise<void> {
      return new Promise((resolve) => {
        const req = http.get(url, { headers: { 'x-customer-id': 'acme' } });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        void started.then(() => req.destroy());
      });
    }

    it('is recorded once, with the usage reported before it left and the estimate for the rest', async () => {
      tollgate = tollgateWith([{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
      const started = deferred();
      const gone = deferred();
      const app = express();
      app.get('/stream', meter(tollgate, { customerId: byHeader, estimate: { tokens: 500, calls: 1 } }), async (req, res) => {
        res.write('partial ');
        req.tollgate!.add({ tokens: 30 });
        res.once('close', () => gone.resolve());
        started.resolve();
        await gone.promise;
        req.tollgate!.add({ tokens: 400 }); // learned after the client left: not counted
        res.end('done');
      });
      server = await listen(app);
      await abortAfter(`${server.url}/stream`, started.promise);
      const [event] = await waitForEvents(tollgate, 'acme', 1);
      expect(event.values).toEqual({ tokens: 30, calls: 1 });
      await afterResponse();
      expect(await recorded(tollgate, 'acme')).toHaveLength(1);
      expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 30 });
    });

    it('before the decision: the handler never runs and the hold is released', async () => {
      tollgate = tollgateWith([{ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
      const asked = deferred();
      const handler = vi.fn();
      const app = express();
      app.get(
        '/slow-auth',
        meter(tollgate, {
          estimate: { tokens: 500 },
          customerId: (req) => new Promise<string>((resolve) => {
            req.res!.once('close', () => resolve('acme'));
            asked.resolve();
          }),
        }),
        handler,
      );
      server = await listen(app);
      await abortAfter(`${server.url}/slow-auth`, asked.promise);
      await afterResponse();
      expect(handler).not.toHaveBeenCalled();
      expect(await recorded(tollgate, 'acme')).toHaveLength(0);
      expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 0 });
    });
  });

  it('records every finished request exactly once', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 1000, period: 'minute' }]);
    const app = express();
    app.get('/x', meter(tollgate, { customerId: byHeader }), (_req, res) => res.send('ok'));
    server = await listen(app);
    for (let i = 0; i < 20; i++) await request(server).get('/x').set('x-customer-id', 'acme').expect(200);
    await waitForEvents(tollgate, 'acme', 20);
    await afterResponse();
    expect(await usage(tollgate, 'acme')).toEqual({ rpm: 20 });
  });

  it('two meters on one request (router-wide and per route) each record their own event once', async () => {
    tollgate = tollgateWith([
      { id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 1000, period: 'minute' },
      { id: 'tokens', name: 'Tokens per day', meterId: 'tokens', limitValue: 1000, period: 'day' },
    ]);
    const app = express();
    app.use(meter(tollgate, { customerId: byHeader, eventType: 'api.request' }));
    app.post('/chat', meter(tollgate, { customerId: byHeader, eventType: 'llm.completion', estimate: { tokens: 50 } }), (req, res) => {
      req.tollgate!.add({ tokens: 7 });
      res.json({ ok: true });
    });
    server = await listen(app);
    await request(server).post('/chat').set('x-customer-id', 'acme').expect(200);
    await request(server).post('/chat').set('x-customer-id', 'acme').expect(200);
    const events = await waitForEvents(tollgate, 'acme', 4);
    await afterResponse();
    expect(events.map((e) => e.eventType).sort()).toEqual(['api.request', 'api.request', 'llm.completion', 'llm.completion']);
    expect(await usage(tollgate, 'acme')).toEqual({ rpm: 4, tokens: 14 });
  });

  it('req.tollgate reaches handlers in sub-apps and after them, and can still be assigned', async () => {
    tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 1000, period: 'minute' }]);
    const seen = (req: express5.Request) => ({ metered: req.tollgate !== undefined, remaining: req.tollgate?.decision.limits[0]?.remaining });
    const app = express();
    const outer = express();
    const inner = express();
    // The meter in the parent app, the handler in a sub-app.
    app.use('/outer', meter(tollgate, { customerId: byHeader }), outer);
    outer.get('/x', (req, res) => res.json(seen(req)));
    // The meter in a sub-app, the handler in the parent app after the sub-app passed the request on.
    inner.use(meter(tollgate, { customerId: byHeader, eventType: 'inner.request' }));
    app.use('/inner', inner);
    app.get('/inner/x', (req, res) => res.json(seen(req)));
    // A middleware of the user's may set req.tollgate itself.
    app.get('/own', meter(tollgate, { customerId: byHeader }), (req, _res, next) => {
      req.tollgate = undefined;
      next();
    }, (req, res) => res.json(seen(req)));
    app.get('/unmetered', (req, res) => res.json(seen(req)));
    server = await listen(app);

    expect((await request(server).get('/outer/x').set('x-customer-id', 'acme').expect(200)).body).toEqual({ metered: true, remaining: 1000 });
    await waitForEvents(tollgate, 'acme', 1);
    expect((await request(server).get('/inner/x').set('x-customer-id', 'acme').expect(200)).body).toEqual({ metered: true, remaining: 999 });
    await waitForEvents(tollgate, 'acme', 2);
    expect((await request(server).get('/own').set('x-customer-id', 'acme').expect(200)).body).toEqual({ metered: false });
    expect((await request(server).get('/unmetered').set('x-customer-id', 'acme').expect(200)).body).toEqual({ metered: false });
    await waitForEvents(tollgate, 'acme', 3);
  });

  it('req.tollgate stays readable after the response closed: usage reported then does not count, and warns', async () => {
    tollgate = tollgateWith([{ id: 'tokens', name: 'Tokens per day', meterId: 'tokens', limitValue: 1000, period: 'day' }]);
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const seenAfterClose = deferred<boolean>();
    const app = express();
    app.get('/x', meter(tollgate, { customerId: byHeader, values: () => ({ tokens: 3 }) }), (req, res) => {
      // Added after the meter's own 'close' listener, so it runs once the request was recorded.
      res.on('close', () => {
        seenAfterClose.resolve(req.tollgate !== undefined);
        req.tollgate?.add({ tokens: 500 });
      });
      res.json({ ok: true });
    });
    server = await listen(app);
    try {
      await request(server).get('/x').set('x-customer-id', 'acme').expect(200);
      expect(await seenAfterClose.promise).toBe(true);
      await waitForEvents(tollgate, 'acme', 1);
      expect(await usage(tollgate, 'acme')).toEqual({ tokens: 3 });
      expect(warn.mock.calls.map(([, o]) => (o as { code?: string })?.code)).toContain('TOLLGATE_LATE_USAGE');
    } finally {
      warn.mockRestore();
    }
  });

  describe('when the store fails', () => {
    const limits: CreateLimitInput[] = [{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 10, period: 'minute' }];

    async function outage(options: Partial<MeterOptions>, engine: 'open' | 'closed' = 'open') {
      const flaky = flakyStore();
      tollgate = tollgateWith(limits, { store: flaky.store, onStoreError: engine });
      await tollgate.ready();
      const handler = vi.fn((_req, res) => res.json({ ok: true }));
      const app = express();
      app.get('/x', meter(tollgate, { customerId: byHeader, estimate: {}, ...options }), handler);
      server = await listen(app);
      flaky.fail(true);
      return { flaky, handler };
    }

    it("'open' runs the handler unmetered", async () => {
      const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
      const { handler } = await outage({ onStoreError: 'open' }, 'closed');
      const res = await request(server!).get('/x').set('x-customer-id', 'acme').expect(200, { ok: true });
      expect(handler).toHaveBeenCalledTimes(1);
      expect(res.headers['ratelimit-limit']).toBeUndefined();
      await afterResponse();
      expect(warnings).toHaveBeenCalledWith(expect.stringMatching(/could not settle/), expect.objectContaining({ code: 'TOLLGATE_RECORD_FAILED' }));
      warnings.mockRestore();
    });

    it("'closed' answers 503 and never calls the handler", async () => {
      const { handler } = await outage({ onStoreError: 'closed' }, 'open');
      const res = await request(server!).get('/x').set('x-customer-id', 'acme').expect(503);
      expect(res.body).toEqual({ error: { code: 'store_unavailable', message: expect.any(String) } });
      expect(handler).not.toHaveBeenCalled();
    });

    it("without a route policy, the instance's policy decides", async () => {
      const { handler } = await outage({}, 'closed');
      await request(server!).get('/x').set('x-customer-id', 'acme').expect(503);
      expect(handler).not.toHaveBeenCalled();
    });

    it('usage is recorded again once the store is back', async () => {
      const { flaky } = await outage({ onStoreError: 'closed' });
      await request(server!).get('/x').set('x-customer-id', 'acme').expect(503);
      flaky.fail(false);
      await request(server!).get('/x').set('x-customer-id', 'acme').expect(200);
      await waitForEvents(tollgate, 'acme', 1);
    });
  });

  it('passes errors from the customerId callback to Express', async () => {
    tollgate = tollgateWith([]);
    const app = express();
    app.get('/x', meter(tollgate, { customerId: async () => { throw new Error('auth service down'); } }), (_req, res) => res.send('ok'));
    app.use((err: Error, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => res.status(500).json({ caught: err.message }));
    server = await listen(app);
    await request(server).get('/x').expect(500, { caught: 'auth service down' });
  });
});

describe('meter() without Express', () => {
  it('runs on a plain Node request and sets req.tollgate on it', async () => {
    const tollgate = tollgateWith([{ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue: 10, period: 'minute' }]);
    const metered = meter(tollgate, { customerId: (req) => req.headers['x-customer-id'] as string });
    const server = http.createServer((req, res) => {
      metered(req as express5.Request, res as express5.Response, () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ own: Object.prototype.hasOwnProperty.call(req, 'tollgate'), remaining: (req as express5.Request).tollgate?.decision.limits[0]?.remaining }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await request(server).get('/').set('x-customer-id', 'acme').expect(200);
      expect(res.body).toEqual({ own: true, remaining: 10 });
      expect(res.headers['ratelimit-remaining']).toBe('10');
      await waitForEvents(tollgate, 'acme', 1);
    } finally {
      await close(server);
      await tollgate.close();
    }
  });
});

describe('meter() options', () => {
  const tollgate = createTollgate();

  function invalid(options: unknown, first: Parameters<typeof meter>[0] = tollgate): TollgateError {
    try {
      meter(first, options as MeterOptions);
    } catch (error) {
      expect(TollgateError.isInstance(error)).toBe(true);
      return error as TollgateError;
    }
    throw new Error('meter() accepted invalid options');
  }

  it('fails at construction with invalid_request naming each bad option', () => {
    const error = invalid({
      customerId: 'acme',
      eventType: 'not an event type',
      standardHeaders: true,
      legacyHeaders: 'yes',
      onStoreError: 'maybe',
      estimate: { tokens: Number.NaN },
      dimensions: { 'bad key': 'x' },
      recordWhen: 200,
      customerID: () => 'typo',
    });
    expect(error.code).toBe('invalid_request');
    expect(error.issues!.map((i) => i.path).sort()).toEqual(
      ['customerID', 'customerId', 'dimensions', 'estimate', 'eventType', 'legacyHeaders', 'onStoreError', 'recordWhen', 'standardHeaders'].sort(),
    );
    expect(error.message).toMatch(/^Invalid meter\(\) options: /);
  });

  it('requires customerId and a Tollgate instance', () => {
    expect(invalid({}).issues).toEqual([{ path: 'customerId', message: expect.stringMatching(/required/) }]);
    expect(invalid({ customerId: () => 'a' }, {} as Tollgate).issues).toEqual([{ path: 'tollgate', message: expect.any(String) }]);
    expect(invalid(undefined).issues!.map((i) => i.path)).toEqual(['options']);
  });

  it('accepts every documented option', () => {
    expect(() =>
      meter(tollgate, {
        customerId: () => 'a',
        eventType: 'llm.completion',
        dimensions: { route: 'chat' },
        estimate: (req) => ({ tokens: Number(req.query.n ?? 1) }),
        values: () => ({ tokens: 1 }),
        recordWhen: () => true,
        standardHeaders: 'draft-8',
        legacyHeaders: true,
        onLimitExceeded: (_req, res) => res.sendStatus(429),
        onMissingCustomer: (_req, res) => res.sendStatus(401),
        onStoreError: 'closed',
      }),
    ).not.toThrow();
  });
});
