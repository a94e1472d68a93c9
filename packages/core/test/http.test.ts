import { EventEmitter } from 'node:events';
import { IncomingMessage } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearOfWindowEnd } from '@tollgate/core/testing';
import {
  attachSession,
  createTollgate,
  limitExceededResponse,
  meterRequest,
  memoryStore,
  startMetering,
  mostConstrained,
  rankLimits,
  rateLimitHeaders,
  retryAfterSeconds,
  TollgateError,
  type LimitStatus,
  type Store,
  type Tollgate,
} from '@tollgate/core';

const NOW = Date.parse('2025-03-10T12:00:30.000Z');

function status(overrides: Partial<LimitStatus> = {}): LimitStatus {
  return {
    limitId: 'per-minute',
    limitName: 'Requests per minute',
    meterId: 'requests',
    customerId: 'acme',
    mode: 'hard',
    period: 'minute',
    limit: 10,
    used: 4,
    remaining: 6,
    exceeded: false,
    allowed: true,
    reset: Date.parse('2025-03-10T12:01:00.000Z') / 1000,
    windowStart: '2025-03-10T12:00:00.000Z',
    windowEnd: '2025-03-10T12:01:00.000Z',
    ...overrides,
  };
}

const daily = status({
  limitId: 'daily-tokens',
  limitName: 'Daily tokens',
  meterId: 'tokens',
  period: 'day',
  limit: 1000,
  used: 900,
  remaining: 100,
  reset: Date.parse('2025-03-11T00:00:00.000Z') / 1000,
  windowStart: '2025-03-10T00:00:00.000Z',
  windowEnd: '2025-03-11T00:00:00.000Z',
});

describe('choosing the limit to advertise', () => {
  it('prefers denying limits, then the lowest remaining share', () => {
    const minute = status();
    expect(mostConstrained([minute, daily])).toBe(daily); // 10% left beats 60% left
    const denied = status({ used: 10, remaining: 0, exceeded: true, allowed: false });
    const almostDaily = { ...daily, remaining: 0, used: 1000, allowed: true };
    expect(mostConstrained([almostDaily, denied])).toBe(denied);
    expect(rankLimits([minute, daily, denied]).map((l) => l.limitId)).toEqual(['per-minute', 'daily-tokens', 'per-minute']);
    expect(rankLimits([minute, daily, denied])[0]).toBe(denied);
  });

  it('leaves soft limits out: they never deny', () => {
    const soft = status({ mode: 'soft', remaining: 0, used: 12, exceeded: true });
    expect(mostConstrained([soft])).toBeUndefined();
    expect(rateLimitHeaders([soft], { standardHeaders: 'draft-7', legacyHeaders: true, now: NOW })).toEqual({});
  });
});

describe('rateLimitHeaders', () => {
  it('draft-6: separate fields with delta-seconds reset and a policy', () => {
    expect(rateLimitHeaders([status()], { standardHeaders: 'draft-6', legacyHeaders: false, now: NOW })).toEqual({
      'RateLimit-Policy': '10;w=60',
      'RateLimit-Limit': '10',
      'RateLimit-Remaining': '6',
      'RateLimit-Reset': '30',
    });
  });

  it('draft-7: one combined RateLimit field', () => {
    expect(rateLimitHeaders([status(), daily], { standardHeaders: 'draft-7', legacyHeaders: false, now: NOW })).toEqual({
      'RateLimit-Policy': '1000;w=86400',
      RateLimit: 'limit=1000, remaining=100, reset=43170',
    });
  });

  it('draft-8: named policies for every hard limit, most constrained first', () => {
    expect(rateLimitHeaders([status(), daily], { standardHeaders: 'draft-8', legacyHeaders: false, now: NOW })).toEqual({
      'RateLimit-Policy': '"daily-tokens";q=1000;w=86400, "per-minute";q=10;w=60',
      RateLimit: '"daily-tokens";r=100;t=43170, "per-minute";r=6;t=30',
    });
  });

  it('draft-8 escapes policy names as structured-field strings', () => {
    const odd = status({ limitId: 'say "hi"\\now' });
    expect(rateLimitHeaders([odd], { standardHeaders: 'draft-8', legacyHeaders: false, now: NOW }).RateLimit).toBe('"say \\"hi\\"\\\\now";r=6;t=30');
  });

  it('legacy X-RateLimit-* with an absolute reset in Unix seconds', () => {
    expect(rateLimitHeaders([status()], { standardHeaders: false, legacyHeaders: true, now: NOW })).toEqual({
      'X-RateLimit-Limit': '10',
      'X-RateLimit-Remaining': '6',
      'X-RateLimit-Reset': String(Date.parse('2025-03-10T12:01:00.000Z') / 1000),
    });
  });

  it('leaves window and reset out for all_time limits, which never reset', () => {
    const forever = status({ period: 'all_time', reset: null, windowStart: '1970-01-01T00:00:00.000Z', windowEnd: null });
    expect(rateLimitHeaders([forever], { standardHeaders: 'draft-6', legacyHeaders: true, now: NOW })).toEqual({
      'RateLimit-Policy': '10',
      'RateLimit-Limit': '10',
      'RateLimit-Remaining': '6',
      'X-RateLimit-Limit': '10',
      'X-RateLimit-Remaining': '6',
    });
    expect(rateLimitHeaders([forever], { standardHeaders: 'draft-8', legacyHeaders: false, now: NOW })).toEqual({
      'RateLimit-Policy': '"per-minute";q=10',
      RateLimit: '"per-minute";r=6',
    });
  });

  it('gives each request its own quota and policy when limits and windows alternate', () => {
    const forever = status({ period: 'all_time', reset: null, windowStart: '1970-01-01T00:00:00.000Z', windowEnd: null });
    const big = status({ limit: 1e12, used: 1, remaining: 1e12 - 1 });
    const options = { standardHeaders: 'draft-6', legacyHeaders: false, now: NOW } as const;
    const policy = (l: LimitStatus) => rateLimitHeaders([l], options)['RateLimit-Policy'];
    const quota = (l: LimitStatus) => rateLimitHeaders([l], options)['RateLimit-Limit'];
    for (let round = 0; round < 2; round++) {
      expect([policy(status()), policy(daily), policy(forever), policy(status()), policy(big), policy(forever)]).toEqual([
        '10;w=60', '1000;w=86400', '10', '10;w=60', '1000000000000;w=60', '10',
      ]);
      expect([quota(big), quota(status()), quota(daily)]).toEqual(['1000000000000', '10', '1000']);
      expect(rateLimitHeaders([daily], { ...options, standardHeaders: 'draft-7' })['RateLimit-Policy']).toBe('1000;w=86400');
    }
  });

  it('draft-8: a limit id whose quota or window changes between requests gets its new policy', () => {
    const forever = status({ period: 'all_time', reset: null, windowStart: '1970-01-01T00:00:00.000Z', windowEnd: null });
    const big = status({ limit: 1e12, used: 1, remaining: 1e12 - 1 });
    const options = { standardHeaders: 'draft-8', legacyHeaders: false, now: NOW } as const;
    const policy = (...limits: LimitStatus[]) => rateLimitHeaders(limits, options)['RateLimit-Policy'];
    for (let round = 0; round < 2; round++) {
      expect([policy(status()), policy(forever), policy(big), policy(status(), daily), policy(status())]).toEqual([
        '"per-minute";q=10;w=60',
        '"per-minute";q=10',
        '"per-minute";q=1000000000000;w=60',
        '"daily-tokens";q=1000;w=86400, "per-minute";q=10;w=60',
        '"per-minute";q=10;w=60',
      ]);
    }
    expect(rateLimitHeaders([status({ mode: 'soft' })], options)).toEqual({});
  });

  it('advertises whole quota units, rounded down, for a limit on a fractional meter', () => {
    // 1.5 dollars with 0.3 left (in floating point, 1.5 - 1.2 is 0.30000000000000004).
    const dollars = status({ limit: 1.5, used: 1.2, remaining: 1.5 - 1.2 });
    expect(rateLimitHeaders([dollars], { standardHeaders: 'draft-6', legacyHeaders: true, now: NOW })).toEqual({
      'RateLimit-Policy': '1;w=60',
      'RateLimit-Limit': '1',
      'RateLimit-Remaining': '0',
      'RateLimit-Reset': '30',
      'X-RateLimit-Limit': '1',
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': String(Date.parse('2025-03-10T12:01:00.000Z') / 1000),
    });
    expect(rateLimitHeaders([dollars], { standardHeaders: 'draft-7', legacyHeaders: false, now: NOW }).RateLimit).toBe('limit=1, remaining=0, reset=30');
    expect(rateLimitHeaders([dollars], { standardHeaders: 'draft-8', legacyHeaders: false, now: NOW })).toEqual({
      'RateLimit-Policy': '"per-minute";q=1;w=60',
      RateLimit: '"per-minute";r=0;t=30',
    });
  });

  it('sends nothing without limits or with every header kind off', () => {
    expect(rateLimitHeaders([], { standardHeaders: 'draft-6', legacyHeaders: true })).toEqual({});
    expect(rateLimitHeaders([status()], { standardHeaders: false, legacyHeaders: false })).toEqual({});
  });
});

describe('the 429 answer', () => {
  it('carries Retry-After, the headers and { error: { code, message, limits } }', () => {
    const denied = status({ used: 10, remaining: 0, exceeded: true, allowed: false });
    const limits = [denied, daily];
    const decision = { allowed: false, reason: 'limits' as const, limits, retryAfter: retryAfterSeconds(limits, NOW) };
    expect(decision.retryAfter).toBe(30);
    const answer = limitExceededResponse(decision, { standardHeaders: 'draft-7', legacyHeaders: false, now: NOW });
    expect(answer.status).toBe(429);
    expect(answer.headers).toEqual({ 'RateLimit-Policy': '10;w=60', RateLimit: 'limit=10, remaining=0, reset=30', 'Retry-After': '30' });
    expect(answer.body.error.code).toBe('limit_exceeded');
    expect(answer.body.error.limits).toEqual(limits);
    expect(answer.body.error.message).toContain('"Requests per minute" (10 of 10 per minute)');
    expect(answer.body.error.message).toContain('Retry in 30 s');
    expect(JSON.parse(JSON.stringify(answer.body))).toEqual(answer.body);
  });

  it('has no Retry-After when a blocking limit never resets', () => {
    const denied = status({ period: 'all_time', reset: null, windowEnd: null, used: 10, remaining: 0, exceeded: true, allowed: false });
    expect(retryAfterSeconds([denied], NOW)).toBeNull();
    const answer = limitExceededResponse({ allowed: false, reason: 'limits', limits: [denied], retryAfter: null }, { standardHeaders: false, legacyHeaders: false });
    expect(answer.headers).toEqual({});
  });
});

// A memory store whose counters can be switched off, to act out a store outage.
function flakyStore(): { store: Store; fail: (on: boolean) => void } {
  const inner = memoryStore();
  let failing = false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'apply') return (...args: unknown[]) => (failing ? Promise.reject(new Error('connection refused')) : (value as (...a: unknown[]) => unknown).apply(target, args));
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, fail: (on) => { failing = on; } };
}

describe('meterRequest', () => {
  let tollgate: Tollgate;
  // The tests count requests under a per-minute limit on the real clock.
  beforeEach(() => clearOfWindowEnd());
  afterEach(async () => tollgate?.close());

  const definitions = {
    meters: [
      { id: 'requests', name: 'Requests', aggregation: 'count' as const, field: '*' },
      { id: 'tokens', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' },
    ],
    limits: [
      { id: 'requests-per-minute', name: 'Requests per minute', meterId: 'requests', limitValue: 3, period: 'minute' as const },
      { id: 'tokens-per-day', name: 'Tokens per day', meterId: 'tokens', limitValue: 1000, period: 'day' as const },
    ],
  };

  it('checks without an estimate and records the reported values once', async () => {
    tollgate = createTollgate(definitions);
    const session = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call', dimensions: { route: '/a' } });
    expect(session.decision).toMatchObject({ allowed: true, reason: 'limits', retryAfter: null });
    session.add({ tokens: 100 });
    session.add({ tokens: 20 });
    session.setDimensions({ model: 'small' });
    await session.settle({ record: true, values: { tokens: 3 } });
    await session.settle({ record: true, values: { tokens: 1000 } });
    const { data } = await tollgate.events.list({ customerId: 'acme' });
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({ eventType: 'api.call', values: { tokens: 123 }, dimensions: { route: '/a', model: 'small' } });
  });

  it('warns once when usage is reported after the request was settled, and counts none of it', async () => {
    tollgate = createTollgate(definitions);
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const session = await meterRequest(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 100 } });
      await session.settle({ record: true });
      session.add({ tokens: 5 });
      session.setDimensions({ model: 'late' });
      session.skip();
      expect(warn.mock.calls.filter(([, o]) => (o as { code?: string })?.code === 'TOLLGATE_LATE_USAGE').map(([m]) => String(m))).toEqual([expect.stringMatching(/^Tollgate: add\(\) was called on a metered request that was already recorded/)]);
      const { data } = await tollgate.events.list({ customerId: 'acme' });
      expect(data.map((e) => [e.values, e.dimensions])).toEqual([[{ tokens: 100 }, {}]]);
    } finally {
      warn.mockRestore();
    }
  });

  it('reserves with an estimate; reported keys replace it, unreported keys keep it', async () => {
    tollgate = createTollgate(definitions);
    const session = await meterRequest(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 500, images: 1 } });
    const tokens = session.decision.limits.find((l) => l.limitId === 'tokens-per-day')!;
    expect(tokens.used).toBe(500); // the hold is visible
    session.add({ tokens: 42 });
    await session.settle({ record: true });
    const { data } = await tollgate.events.list({ customerId: 'acme' });
    expect(data[0].values).toEqual({ tokens: 42, images: 1 });
    const check = await tollgate.limits.check({ customerId: 'acme' });
    expect(check.limits.find((l) => l.limitId === 'tokens-per-day')!.used).toBe(42);
  });

  it('commits the estimate when nothing is reported', async () => {
    tollgate = createTollgate(definitions);
    const session = await meterRequest(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 500 } });
    await session.settle({ record: true });
    expect((await tollgate.events.list({ customerId: 'acme' })).data[0].values).toEqual({ tokens: 500 });
  });

  it('releases the hold when not recorded or skipped', async () => {
    tollgate = createTollgate(definitions);
    const failed = await meterRequest(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 900 } });
    await failed.settle({ record: false });
    const skipped = await meterRequest(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 900 } });
    expect(skipped.decision.allowed).toBe(true); // the first hold is gone
    skipped.skip();
    await skipped.settle({ record: true });
    expect((await tollgate.events.list({ customerId: 'acme' })).data).toHaveLength(0);
    const check = await tollgate.limits.check({ customerId: 'acme' });
    expect(check.limits.every((l) => l.used === 0)).toBe(true);
  });

  it('denies with a retryAfter, and settling a denied session records nothing', async () => {
    tollgate = createTollgate(definitions);
    for (let i = 0; i < 3; i++) await tollgate.events.record({ customerId: 'acme', eventType: 'api.call' });
    const session = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call' });
    expect(session.decision).toMatchObject({ allowed: false, reason: 'limits' });
    expect(session.decision.retryAfter).toBeGreaterThanOrEqual(1);
    expect(session.decision.retryAfter).toBeLessThanOrEqual(60);
    await session.settle({ record: true });
    expect((await tollgate.events.list({ customerId: 'acme' })).data).toHaveLength(3);
  });

  it('lets exactly as many concurrent reservations through as fit', async () => {
    tollgate = createTollgate({ meters: definitions.meters, limits: [definitions.limits[1]] });
    await tollgate.events.record({ customerId: 'acme', eventType: 'llm.completion', values: { tokens: 700 } });
    const sessions = await Promise.all(Array.from({ length: 20 }, () => meterRequest(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 100 } })));
    expect(sessions.filter((s) => s.decision.allowed)).toHaveLength(3);
  });

  it('startMetering decides a check on the memory store at once, and settles without waiting', async () => {
    tollgate = createTollgate(definitions);
    await tollgate.customers.create({ id: 'acme' });
    await tollgate.limits.check({ customerId: 'acme' }); // the customer's context is cached from here on
    const session = startMetering(tollgate, { customerId: 'acme', eventType: 'api.call' });
    expect(session).not.toBeInstanceOf(Promise);
    const { decision } = session as Exclude<typeof session, Promise<unknown>>;
    expect(decision).toMatchObject({ allowed: true, reason: 'limits' });
    expect(decision.limits.find((l) => l.limitId === 'requests-per-minute')).toMatchObject({ used: 0, remaining: 3 });
    void (session as Exclude<typeof session, Promise<unknown>>).settle({ record: true });
    // Recorded before anything was awaited.
    const again = startMetering(tollgate, { customerId: 'acme', eventType: 'api.call' }) as Exclude<typeof session, Promise<unknown>>;
    expect(again.decision.limits.find((l) => l.limitId === 'requests-per-minute')!.used).toBe(1);
    // With an estimate (a reservation), or through a Tollgate that is not the engine's own object, a promise.
    const reserving = startMetering(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 1 } });
    expect(reserving).toBeInstanceOf(Promise);
    await (await reserving).settle({ record: false });
    const wrapped: Tollgate = { ...tollgate, limits: { ...tollgate.limits }, events: { ...tollgate.events } };
    const viaWrapper = startMetering(wrapped, { customerId: 'acme', eventType: 'api.call' });
    expect(viaWrapper).toBeInstanceOf(Promise);
    expect((await viaWrapper).decision.limits.find((l) => l.limitId === 'requests-per-minute')!.used).toBe(1);
  });

  it('startMetering on a store that must be waited for answers with a promise', async () => {
    const flaky = flakyStore();
    tollgate = createTollgate({ ...definitions, store: flaky.store });
    await tollgate.ready();
    await tollgate.limits.check({ customerId: 'acme' });
    const pending = startMetering(tollgate, { customerId: 'acme', eventType: 'api.call' });
    expect(pending).toBeInstanceOf(Promise);
    const session = await pending;
    expect(session.decision).toMatchObject({ allowed: true, reason: 'limits' });
    await session.settle({ record: true });
    expect((await tollgate.events.list({ customerId: 'acme' })).data).toHaveLength(1);
  });

  it('rejects invalid late usage at the call, not silently at the end', async () => {
    tollgate = createTollgate(definitions);
    const session = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call' });
    expect(() => session.add({ tokens: Number.NaN })).toThrow(TollgateError);
    expect(() => session.setDimensions({ 'bad key!': 'x' })).toThrow(/setDimensions.*bad key!/);
  });

  it('follows the store-failure policy: open runs unmetered, closed refuses', async () => {
    const flaky = flakyStore();
    tollgate = createTollgate({ ...definitions, store: flaky.store });
    await tollgate.ready();
    flaky.fail(true);
    const open = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call', onStoreError: 'open' });
    expect(open.decision).toEqual({ allowed: true, reason: 'store_error_open', limits: [], retryAfter: null });
    const closed = await meterRequest(tollgate, { customerId: 'acme', eventType: 'llm.completion', estimate: { tokens: 1 }, onStoreError: 'closed' });
    expect(closed.decision).toMatchObject({ allowed: false, reason: 'store_error_closed' });
    const inherited = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call' });
    expect(inherited.decision.reason).toBe('store_error_open'); // the engine's default policy
  });

  it('settling after a failed store warns instead of throwing', async () => {
    const flaky = flakyStore();
    tollgate = createTollgate({ ...definitions, store: flaky.store });
    const session = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call' });
    flaky.fail(true);
    const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      await expect(session.settle({ record: true })).resolves.toBeUndefined();
      expect(warnings).toHaveBeenCalledWith(expect.stringMatching(/could not settle/), expect.objectContaining({ code: 'TOLLGATE_RECORD_FAILED' }));
    } finally {
      warnings.mockRestore();
    }
  });
});

describe('attachSession', () => {
  it('gives each request its own session and close call, also when requests share one close callback', async () => {
    const tollgate = createTollgate({ meters: [{ id: 'requests', name: 'Requests', aggregation: 'count', field: '*' }] });
    // Shaped as Express shapes a request: a prototype of the app's, then Express's, then IncomingMessage.
    const framework = Object.create(IncomingMessage.prototype) as object;
    const app = Object.create(framework) as object;
    const request = () => {
      const res = new EventEmitter();
      const req = Object.create(app) as { res: EventEmitter; tollgate?: unknown };
      req.res = res;
      return { req, res };
    };
    const a = request();
    const b = request();
    const sessionA = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call' });
    const sessionB = await meterRequest(tollgate, { customerId: 'acme', eventType: 'api.call' });
    const shared = vi.fn();
    attachSession(a.req, a.res, sessionA, shared);
    attachSession(b.req, b.res, sessionB, shared);
    expect(a.req.tollgate).toBe(sessionA);
    expect(b.req.tollgate).toBe(sessionB);
    a.res.emit('close');
    expect(shared).toHaveBeenCalledTimes(1);
    b.res.emit('close');
    expect(shared).toHaveBeenCalledTimes(2);
    // Still there once the response closed, and on no request that was not metered.
    expect(a.req.tollgate).toBe(sessionA);
    expect(request().req.tollgate).toBeUndefined();
    await tollgate.close();
  });
});
