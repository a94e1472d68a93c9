import { createRequire } from 'node:module';
import { describe, expect, test } from 'vitest';
import { TollgateError, createTollgate, type Tollgate } from '@tollgate/core';

const meters = [{ id: 'tokens', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' }];

function setup() {
  return createTollgate({ meters, limits: [{ id: 'day', name: 'Daily', meterId: 'tokens', limitValue: 100, period: 'day' }] });
}

async function nothingStored(tollgate: Tollgate) {
  expect((await tollgate.events.getSummary()).totalEvents).toBe(0);
  expect((await tollgate.customers.list()).data).toEqual([]);
  expect((await tollgate.limits.list()).data.map((l) => l.id)).toEqual(['day']);
  expect((await tollgate.meters.list()).data.map((m) => m.id)).toEqual(['tokens']);
}

async function rejects(call: Promise<unknown>, path: string) {
  const error = await call.then(() => null, (e: unknown) => e);
  expect(TollgateError.isInstance(error)).toBe(true);
  const e = error as TollgateError;
  expect(e.code).toBe('invalid_request');
  expect(e.issues!.map((i) => i.path)).toContain(path);
  expect(e.message).toContain(path);
}

const ev = (over: Record<string, unknown>) => ({ customerId: 'c1', eventType: 'llm.completion', values: { tokens: 1 }, ...over });

describe('bad input is rejected with invalid_request naming the field, and changes nothing', () => {
  test('NaN values', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ values: { tokens: Number.NaN } })), 'values.tokens');
    await nothingStored(t);
  });
  test('infinite values', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ values: { tokens: Number.POSITIVE_INFINITY } })), 'values.tokens');
    await nothingStored(t);
  });
  test('values that are not numbers', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ values: { tokens: '12' } }) as never), 'values.tokens');
    await nothingStored(t);
  });
  test('empty customer id', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ customerId: '' })), 'customerId');
    await rejects(t.limits.check({ customerId: '' }), 'customerId');
    await rejects(t.reserve({ customerId: '', eventType: 'x', estimate: {} }), 'customerId');
    await nothingStored(t);
  });
  test('empty meter and limit ids', async () => {
    const t = setup();
    await rejects(t.meters.create({ id: '', name: 'x', aggregation: 'count', field: '*' }), 'id');
    await rejects(t.limits.create({ id: '', name: 'x', meterId: 'tokens', limitValue: 1, period: 'day' }), 'id');
    await nothingStored(t);
  });
  test('unknown periods', async () => {
    const t = setup();
    await rejects(t.limits.create({ id: 'l', name: 'x', meterId: 'tokens', limitValue: 1, period: 'fortnight' as 'day' }), 'period');
    await rejects(t.limits.create({ id: 'l', name: 'x', meterId: 'tokens', limitValue: 1, period: '0m' as 'day' }), 'period');
    await nothingStored(t);
  });
  test('dimension keys outside [A-Za-z0-9_.-]{1,64}', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ dimensions: { 'bad key': 'x' } })), 'dimensions.bad key');
    await expect(t.events.record(ev({ dimensions: { 'bad key': 'x' } }))).rejects.toThrow(/\[A-Za-z0-9_\.-\]\{1,64\}/);
    await rejects(t.events.record(ev({ dimensions: { ['k'.repeat(65)]: 'x' } })), `dimensions.${'k'.repeat(65)}`);
    await rejects(t.events.record(ev({ dimensions: { "x';drop": 'x' } })), "dimensions.x';drop");
    await nothingStored(t);
  });
  test('dimension values over 256 characters', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ dimensions: { model: 'x'.repeat(257) } })), 'dimensions.model');
    await nothingStored(t);
  });
  test('more than 32 dimensions', async () => {
    const t = setup();
    const dimensions = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`d${i}`, 'v']));
    await rejects(t.events.record(ev({ dimensions })), 'dimensions');
    await nothingStored(t);
  });
  test('__proto__-style keys', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ dimensions: JSON.parse('{"__proto__": "x"}') })), 'dimensions.__proto__');
    await rejects(t.events.record(ev({ values: JSON.parse('{"constructor": 1}') })), 'values.constructor');
    await rejects(t.events.record(ev({ properties: JSON.parse('{"__proto__": {"admin": true}}') })), 'properties.__proto__');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    await nothingStored(t);
  });
  test('batches over 1000 events', async () => {
    const t = setup();
    await rejects(t.events.batchIngest({ events: Array.from({ length: 1001 }, () => ev({})) }), 'events');
    await nothingStored(t);
  });
  test('one bad event fails the whole batch', async () => {
    const t = setup();
    await rejects(t.events.batchIngest({ events: [ev({}), ev({}), ev({ values: { tokens: Number.NaN } })] }), 'events.2.values.tokens');
    await nothingStored(t);
  });
  test('limitValue <= 0', async () => {
    const t = setup();
    await rejects(t.limits.create({ id: 'l', name: 'x', meterId: 'tokens', limitValue: 0, period: 'day' }), 'limitValue');
    await rejects(t.limits.create({ id: 'l', name: 'x', meterId: 'tokens', limitValue: -5, period: 'day' }), 'limitValue');
    await rejects(t.limits.update('day', { limitValue: 0 }), 'limitValue');
    expect((await t.limits.retrieve('day')).limitValue).toBe(100);
    await nothingStored(t);
  });
  test('timezones that Intl rejects', async () => {
    const t = setup();
    await rejects(t.customers.create({ id: 'c', timezone: 'Mars/Olympus' }), 'timezone');
    expect(() => createTollgate({ timezone: 'Nowhere/City' })).toThrow(/timezone/);
    await nothingStored(t);
  });
  test('invalid dates and unknown fields', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ timestamp: 'yesterday' })), 'timestamp');
    await rejects(t.events.record(ev({ tokens: 5 })), '(input)');
    await nothingStored(t);
  });
  test('strings no store could keep as given: NUL and lone surrogates', async () => {
    const t = setup();
    await rejects(t.events.record(ev({ customerId: 'a\u0000b' })), 'customerId');
    await rejects(t.events.record(ev({ dimensions: { model: 'x\uD800' } })), 'dimensions.model');
    await rejects(t.events.record(ev({ idempotencyKey: '\uDC00' })), 'idempotencyKey');
    await nothingStored(t);
  });
  test('meters whose field does not fit the aggregation', async () => {
    const t = setup();
    await rejects(t.meters.create({ id: 'm', name: 'm', aggregation: 'count', field: 'values.tokens' }), 'field');
    await rejects(t.meters.create({ id: 'm', name: 'm', aggregation: 'sum', field: '*' }), 'field');
    await rejects(t.meters.create({ id: 'm', name: 'm', aggregation: 'unique', field: 'values.tokens' }), 'field');
    await nothingStored(t);
  });

  test('meters reading a reserved key, which no event can carry', async () => {
    const t = setup();
    await rejects(t.meters.create({ id: 'm', name: 'm', aggregation: 'sum', field: 'values.constructor' }), 'field');
    await rejects(t.meters.create({ id: 'm', name: 'm', aggregation: 'max', field: 'values.__proto__' }), 'field');
    await rejects(t.meters.create({ id: 'm', name: 'm', aggregation: 'unique', field: 'dimensions.prototype' }), 'field');
    await nothingStored(t);
  });
  test('options of createTollgate: wrong types, out of range, unknown keys', () => {
    const issue = (options: Record<string, unknown>) => {
      try {
        createTollgate(options);
      } catch (error) {
        expect(TollgateError.isInstance(error) && error.code).toBe('invalid_request');
        return (error as TollgateError).issues!.map((i) => i.path).join(',') + ' | ' + (error as TollgateError).message;
      }
      throw new Error(`accepted ${JSON.stringify(options)}`);
    };
    // A string read from an environment variable made every reserve fail with a RangeError.
    expect(issue({ defaultTtlMs: '60000' })).toMatch(/^defaultTtlMs \|/);
    // A negative hold time made holds hold nothing: two reservations of the whole limit both allowed.
    expect(issue({ defaultTtlMs: -1 })).toMatch(/^defaultTtlMs \|/);
    expect(issue({ defaultTtlMs: 8 * 24 * 3600 * 1000 })).toMatch(/^defaultTtlMs \|/);
    expect(issue({ cacheTtlMs: 'x' })).toMatch(/^cacheTtlMs \|/);
    expect(issue({ cacheTtlMs: Number.NaN })).toMatch(/^cacheTtlMs \|/);
    expect(issue({ storeTimeoutMs: 0 })).toMatch(/^storeTimeoutMs \|/);
    expect(issue({ onStoreError: 'maybe' })).toMatch(/^onStoreError \|/);
    expect(issue({ timezone: 'Nope' })).toMatch(/^timezone \| .*IANA timezone/);
    expect(issue({ now: 5 })).toMatch(/^now \|/);
    expect(issue({ onAlert: 'log' })).toMatch(/^onAlert \|/);
    expect(issue({ timezon: 'Europe/Berlin' })).toMatch(/timezon/);
    // What is allowed stays allowed.
    for (const ok of [{ cacheTtlMs: Infinity }, { cacheTtlMs: 0 }, { defaultTtlMs: 1 }, { timezone: 'Asia/Tokyo', now: () => 0, onAlert: () => {} }]) {
      expect(() => createTollgate(ok)).not.toThrow();
    }
  });

  test('declared definitions are validated when Tollgate is created', () => {
    expect(() => createTollgate({ limits: [{ id: 'l', name: 'l', meterId: 'm', limitValue: -1, period: 'day' }] })).toThrow(TollgateError);
  });
});

describe('TollgateError', () => {
  test('is recognised across duplicate installs with isInstance', () => {
    // The CommonJS build is a second copy of the class, as a duplicate install would be.
    const require = createRequire(import.meta.url);
    const copy = require('../dist/index.cjs') as typeof import('@tollgate/core');
    const foreign = new copy.TollgateError('store_timeout', 'slow');
    expect(foreign instanceof TollgateError).toBe(false);
    expect(TollgateError.isInstance(foreign)).toBe(true);
    expect(copy.TollgateError.isInstance(new TollgateError('limit_exceeded', 'x'))).toBe(true);
    expect(TollgateError.isInstance(new Error('x'))).toBe(false);
    expect(TollgateError.isInstance(null)).toBe(false);
  });

  test('keeps its cause and serialises to plain JSON', () => {
    const cause = new Error('ECONNREFUSED');
    const e = new TollgateError('store_unavailable', 'down', { cause });
    expect(e.cause).toBe(cause);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: 'store_unavailable', message: 'down' });
  });

  test('not found and already exists carry their codes', async () => {
    const t = setup();
    await expect(t.meters.retrieve('nope')).rejects.toMatchObject({ code: 'meter_not_found' });
    await expect(t.limits.retrieve('nope')).rejects.toMatchObject({ code: 'limit_not_found' });
    await expect(t.customers.retrieve('nope')).rejects.toMatchObject({ code: 'customer_not_found' });
    await expect(t.meters.create(meters[0])).rejects.toMatchObject({ code: 'already_exists' });
  });
});
