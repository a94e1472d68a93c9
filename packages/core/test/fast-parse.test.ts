// The hot-path validators must answer exactly as the zod schemas do: the same output for valid
// input, the same invalid_request error otherwise. Random inputs mix valid and invalid parts,
// including the odd cases the fast path must hand to zod (symbol keys, null prototypes, class
// instances, own __proto__ keys, NUL and lone surrogates, Date subclasses).
import fc from 'fast-check';
import { describe, expect, test, vi } from 'vitest';
import { parseBatchIngest, parseCheck, parseCommit, parseRecordEvent, parseReserve } from '../src/fast-parse.js';
import { batchIngestSchema, checkSchema, commitSchema, parse, recordEventSchema, reserveSchema } from '../src/schemas.js';

class Box {
  constructor(public tokens = 1) {}
}
class LaterDate extends Date {}

const text = fc.oneof(
  fc.constantFrom('c1', 'cus_42', 'llm.completion', 'api:call', 'gpt-4o', '', ' ', 'a;b', "o'k", 'ünï', '😀', 'x'.repeat(64), 'x'.repeat(65), 'y'.repeat(256), 'y'.repeat(257)),
  fc.constantFrom('a\u0000b', '\uD800', 'z\uDC00', '\uD83D\uDE00', '__proto__', 'constructor', 'prototype', 'values.tokens', '2026-01-02T03:04:05Z', 'not a date'),
  fc.string({ maxLength: 8 }),
);
const key = fc.oneof(fc.constantFrom('tokens', 'model', 'a.b', 'a-b', 'a b', 'k'.repeat(65), '__proto__', 'constructor', 'prototype', ''), fc.string({ maxLength: 4 }));
const number = fc.oneof(fc.constantFrom(0, -0, 1, 1.5, -3, 1e300, Number.NaN, Number.POSITIVE_INFINITY, 604_800_000, 604_800_001), fc.integer(), fc.double());

/** An object built from entries, in one of several shapes zod and the fast path must agree on. */
function shaped(entries: Array<[string, unknown]>, shape: number): unknown {
  if (shape === 1) return Object.assign(Object.create(null), Object.fromEntries(entries));
  if (shape === 2) return JSON.parse(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`);
  if (shape === 3) return { ...Object.fromEntries(entries), [Symbol('s')]: 1 };
  if (shape === 4) return Object.assign(new Box(), Object.fromEntries(entries));
  return Object.fromEntries(entries);
}
const record = (value: fc.Arbitrary<unknown>, maxKeys = 3) =>
  fc.tuple(fc.array(fc.tuple(key, value), { maxLength: maxKeys }), fc.constantFrom(0, 0, 0, 0, 1, 2, 3, 4)).map(([e, s]) => shaped(e, s));
const manyKeys = (n: number, value: unknown) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));

/** Mostly the valid case, sometimes anything: agreement must hold on both sides. */
const mostly = (valid: fc.Arbitrary<unknown>, wild: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: valid, weight: 8 }, { arbitrary: wild, weight: 1 });
const goodKey = fc.constantFrom('tokens', 'model', 'a.b', 'a-b', 'k'.repeat(64));
const goodRecord = (value: fc.Arbitrary<unknown>) => fc.dictionary(goodKey, value, { maxKeys: 3 });

const values = mostly(goodRecord(fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))), fc.oneof(goodRecord(number), record(number), fc.constantFrom(manyKeys(64, 1), manyKeys(65, 1), null, [], 'x', new Map())));
const dimensions = mostly(goodRecord(fc.constantFrom('gpt-4o', '', 'a;b', "o'k", '😀', 'y'.repeat(256))), fc.oneof(goodRecord(text), record(text), fc.constantFrom(manyKeys(32, 'v'), manyKeys(33, 'v'), null, [1], 7)));
const properties = mostly(goodRecord(fc.jsonValue({ maxDepth: 1 })), fc.oneof(record(fc.anything({ maxDepth: 1 })), fc.constantFrom(null, [], 'x')));
const date = mostly(fc.constantFrom('2026-01-02T03:04:05Z', new Date(0), new Date('2026-03-01T00:00:00.5Z')), fc.oneof(text, fc.date({ noInvalidDate: false }), fc.constantFrom(new LaterDate(0), 0, null)));

/** Builds an input from fields (each usually present), sometimes undefined, sometimes with an unknown key. */
function input(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  const absent = Symbol.for('absent');
  const parts = Object.entries(fields).map(([k, arb]) => fc.oneof({ arbitrary: arb, weight: 10 }, { arbitrary: fc.constant(undefined), weight: 1 }, { arbitrary: fc.constant(absent), weight: 2 }).map((v) => [k, v] as const));
  return fc.tuple(fc.tuple(...parts), fc.oneof({ arbitrary: fc.constant(null), weight: 20 }, { arbitrary: fc.constantFrom('extra', '__proto__'), weight: 1 }), fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), fc.oneof({ arbitrary: fc.constant(null), weight: 40 }, { arbitrary: fc.constantFrom(undefined, 'x', [], 3), weight: 1 }))
    .map(([entries, extra, shape, odd]) => {
      if (odd !== null) return odd; // null here means: no odd input this time
      const kept = entries.filter(([, v]) => v !== absent) as Array<[string, unknown]>;
      if (extra) kept.push([extra, 1]);
      return shape === 2 ? shaped(kept.map(([k, v]) => [k, v instanceof Date ? v.toJSON() : v]), 2) : shaped(kept, shape);
    });
}

function outcome(run: () => unknown): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: JSON.parse(JSON.stringify(run() ?? null)) };
  } catch (e) {
    return { ok: false, message: (e as Error).message };
  }
}

const id = mostly(fc.constantFrom('c1', 'cus_42', 'ünï', '😀', 'y'.repeat(256)), fc.oneof(text, number));
const eventType = mostly(fc.constantFrom('llm.completion', 'api:call', 'a-b_c'), text);
const cases = [
  ['record', parseRecordEvent, recordEventSchema, 'event', input({ customerId: id, eventType, values, dimensions, properties, timestamp: date, idempotencyKey: id })],
  ['check', parseCheck, checkSchema, 'check', input({ customerId: id, eventType, dimensions, estimate: values })],
  ['reserve', parseReserve, reserveSchema, 'reservation', input({ customerId: id, eventType, dimensions, estimate: values, ttlMs: mostly(fc.integer({ min: 1, max: 604_800_000 }), number) })],
  ['commit', parseCommit, commitSchema, 'commit', input({ values, dimensions, properties, timestamp: date })],
] as const;

describe('fast-path validators agree with the zod schemas', () => {
  for (const [name, fast, schema, what, arb] of cases) {
    test(`${name}: same output or the same invalid_request error`, () => {
      let valid = 0;
      fc.assert(
        fc.property(arb, (raw) => {
          const expected = outcome(() => parse(schema, raw, what));
          if (expected.ok) valid++;
          expect(outcome(() => fast(raw))).toEqual(expected);
        }),
        { numRuns: 4000 },
      );
      // The generator must reach both sides, or the agreement says little.
      expect(valid).toBeGreaterThan(200);
    });
  }

  test('batchIngest: same output or the same error, element by element', () => {
    const good = { customerId: 'c1', eventType: 'llm.completion', values: { tokens: 2 }, timestamp: '2026-01-01T00:00:00Z' };
    const batches: unknown[] = [
      { events: [good, good] },
      { events: [good, { ...good, customerId: '' }] },
      { events: [] },
      { events: Array.from({ length: 1001 }, () => good) },
      { events: [good], extra: 1 },
      { events: [good, undefined] },
      { events: 'x' },
    ];
    for (const raw of batches) expect(outcome(() => parseBatchIngest(raw))).toEqual(outcome(() => parse(batchIngestSchema, raw, 'batch')));
  });

  // The validators remember the last id and event type that passed; before any has passed, what
  // they remember must not match a null (nor anything else) given as the first input.
  test.each([
    ['customerId', { customerId: null, eventType: 'e' }],
    ['eventType', { customerId: 'c1', eventType: null }],
  ])('a null %s as the very first input is rejected as zod rejects it', async (_field, raw) => {
    vi.resetModules();
    const fresh = await import('../src/fast-parse.js');
    const expected = outcome(() => parse(recordEventSchema, raw, 'event'));
    expect(expected.ok).toBe(false);
    expect(outcome(() => fresh.parseRecordEvent(raw))).toEqual(expected);
  });

  test('the output is a copy: changing the input afterwards changes nothing parsed', () => {
    const raw = { customerId: 'c1', eventType: 'e', values: { tokens: 1 }, dimensions: { model: 'm' } };
    const parsed = parseRecordEvent(raw);
    raw.values.tokens = 99;
    raw.dimensions.model = 'changed';
    expect(parsed.values).toEqual({ tokens: 1 });
    expect(parsed.dimensions).toEqual({ model: 'm' });
  });
});
