/**
 * Hostile strings — quotes, semicolons, SQL comments, JSON-path and placeholder syntax, unicode,
 * `__proto__` — in customer ids, dimension values, idempotency keys, properties, definitions and
 * filters. The SQL stores must keep and query them through parameters exactly as the memory store
 * does, or reject them with `invalid_request` before anything is written.
 */
import { afterAll, describe, expect, test, vi } from 'vitest';
import { lockstepSubjects, same, type Subject } from './fixtures/sql-lockstep.js';

const ids = vi.hoisted(() => ({ next: 0 }));
vi.mock('../src/ids.js', () => ({
  newId: (prefix: string, at: number = Date.now()) => `${prefix}_${at.toString(36).padStart(9, '0')}${(ids.next++).toString(36).padStart(12, '0')}`,
  // The memory store reads these ids from their digits.
  idPartsOf: () => undefined,
}));

const hostile = [
  "'; DROP TABLE tollgate_events; --",
  'Robert"); DROP TABLE events; --',
  '" OR "1"="1',
  "' OR 1=1 --",
  'semi;colon; ;',
  'back\\slash \\" \\\\ \\u0041',
  '$1 $2 ?1 ? @p0 :name $$ dollar quoted $$',
  '%_ LIKE [a-z]* wildcards',
  '{"json": ["array"], "n": 1}',
  '$."model"',
  '$.model[0]',
  'line\nbreak\ttab\rreturn',
  'emoji 🚀 中文 ünïcödé العربية',
  '\u202eright-to-left override',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  ' leading and trailing ',
  'x'.repeat(256),
];

const T0 = Date.parse('2026-05-04T10:00:00.000Z');
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function subjects(): Subject[] {
  return lockstepSubjects('hostile strings test', {
    now: () => T0,
    meters: [
      { id: 'requests', name: 'Requests', aggregation: 'count', field: '*' },
      { id: 'users', name: 'Users', aggregation: 'unique', field: 'dimensions.user_id' },
    ],
  }, cleanups);
}

const reserved = new Set(['__proto__', 'constructor', 'prototype']);

describe('hostile strings in the SQL stores', () => {
  test('are stored, returned and queried exactly as the memory store does', async () => {
    const all = subjects();
    const run = <R>(label: string, fn: (s: Subject) => Promise<R>) => same(ids, all, label, fn);
    for (const [i, s] of hostile.entries()) {
      const label = JSON.stringify(s);
      const event = {
        customerId: s,
        eventType: 'hostile.test',
        values: { n: i },
        dimensions: { model: s, user_id: s, 'weird.key-1_x': s },
        // A top-level properties key that reaches a prototype is refused (validation.test.ts); nested ones are data.
        properties: { [reserved.has(s) ? `key:${s}` : s]: s, nested: [s, { [s]: s }] },
        idempotencyKey: s,
      };
      const first = await run(`record ${label}`, (x) => x.tollgate.events.record(event));
      expect(first).toMatchObject({ ok: true, value: { recorded: true } });
      await run(`replay ${label}`, (x) => x.tollgate.events.record(event));
      await run(`customer ${label}`, (x) => x.tollgate.customers.retrieve(s));
      await run(`list by customer ${label}`, (x) => x.tollgate.events.list({ customerId: s }));
      await run(`list by dimensions ${label}`, (x) => x.tollgate.events.list({ dimensions: { model: s, user_id: s } }));
      await run(`summary ${label}`, (x) => x.tollgate.events.getSummary({ customerId: s, dimensions: { 'weird.key-1_x': s } }));
      await run(`meter ${label}`, (x) => x.tollgate.meters.query('users', { dimensions: { model: s } }));
      await run(`limit ${label}`, async (x) => {
        await x.tollgate.customers.update(s, { name: s, metadata: { note: s } });
        await x.tollgate.meters.create({ id: `m-${s}`, name: s.slice(0, 256), aggregation: 'count', field: '*', eventFilter: { dimensions: { model: s } } });
        await x.tollgate.limits.create({ id: `l-${s}`, name: 'L', meterId: `m-${s}`, limitValue: 1, period: 'day', customerId: s, dimensionFilters: { user_id: s } });
        return x.tollgate.limits.check({ customerId: s, dimensions: { model: s, user_id: s } });
      });
    }
    await run('breakdown by model', (x) => x.tollgate.events.getBreakdown({ groupBy: 'model' }));
    await run('breakdown by customer', (x) => x.tollgate.events.getBreakdown({ groupBy: 'customerId' }));
    await run('unique users', (x) => x.tollgate.meters.query('users'));
    await run('every event', (x) => x.tollgate.events.list({ limit: 1000 }));
    await run('customers', (x) => x.tollgate.customers.list({ limit: 1000 }));
    await run('meters', (x) => x.tollgate.meters.list({ limit: 1000 }));
    await run('limits', (x) => x.tollgate.limits.list({ limit: 1000 }));
    const summary = await run('summary', (x) => x.tollgate.events.getSummary());
    // Nothing was executed as SQL: every event is there once, and the tables still answer.
    expect(summary).toEqual({ ok: true, value: { totalEvents: hostile.length, values: { n: (hostile.length * (hostile.length - 1)) / 2 } } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('as dimension or value keys are rejected by validation, and nothing is stored', async () => {
    const all = subjects();
    const run = <R>(label: string, fn: (s: Subject) => Promise<R>) => same(ids, all, label, fn);
    const keys = ['a"b', "a'b", 'a;b', 'a b', '$.x', 'a[0]', '', 'ü', '__proto__', 'constructor', 'x'.repeat(65)];
    for (const key of keys) {
      const label = JSON.stringify(key);
      expect(await run(`dimension key ${label}`, (x) => x.tollgate.events.record({ customerId: 'c', eventType: 'e', dimensions: { [key]: 'v' } }))).toEqual({ ok: false, code: 'invalid_request' });
      expect(await run(`value key ${label}`, (x) => x.tollgate.events.record({ customerId: 'c', eventType: 'e', values: { [key]: 1 } }))).toEqual({ ok: false, code: 'invalid_request' });
      expect(await run(`batch ${label}`, (x) => x.tollgate.events.batchIngest({ events: [{ customerId: 'c', eventType: 'e' }, { customerId: 'c', eventType: 'e', dimensions: { [key]: 'v' } }] }))).toEqual({ ok: false, code: 'invalid_request' });
      expect(await run(`group by ${label}`, (x) => x.tollgate.events.getBreakdown({ groupBy: key }))).toEqual({ ok: false, code: 'invalid_request' });
      expect(await run(`filter ${label}`, (x) => x.tollgate.events.list({ dimensions: { [key]: 'v' } }))).toEqual({ ok: false, code: 'invalid_request' });
    }
    expect(await run('summary', (x) => x.tollgate.events.getSummary())).toEqual({ ok: true, value: { totalEvents: 0, values: {} } });
  });

  test('that a database cannot keep unchanged are rejected with invalid_request, not altered', async () => {
    const [memory, ...sql] = subjects();
    // UTF-8 drivers turn a lone surrogate into U+FFFD; Postgres text and jsonb refuse U+0000.
    const cases = [
      { text: 'lone \ud800 surrogate', rejectedBy: ['sqlite', 'postgres'] },
      { text: 'trailing \udfff', rejectedBy: ['sqlite', 'postgres'] },
      { text: 'nul \u0000 byte', rejectedBy: ['postgres'] },
    ];
    for (const { text, rejectedBy } of cases) {
      for (const input of [
        { customerId: text, eventType: 'e' },
        { customerId: 'c', eventType: 'e', dimensions: { model: text } },
        { customerId: 'c', eventType: 'e', idempotencyKey: text },
        { customerId: 'c', eventType: 'e', properties: { note: text } },
      ]) {
        if (!('properties' in input)) {
          // Ids, dimension values and idempotency keys are refused by validation, for every store.
          for (const s of [memory, ...sql]) await expect(s.tollgate.events.record(input), s.name).rejects.toMatchObject({ code: 'invalid_request' });
          continue;
        }
        expect((await memory.tollgate.events.record(input)).recorded).toBe(true);
        for (const s of sql) {
          const label = `${s.name} ${JSON.stringify(input)}`;
          if (rejectedBy.includes(s.name)) {
            await expect(s.tollgate.events.record(input), label).rejects.toMatchObject({ code: 'invalid_request' });
            await expect(s.tollgate.events.batchIngest({ events: [{ customerId: 'ok', eventType: 'e' }, input] }), label).rejects.toMatchObject({ code: 'invalid_request' });
          } else {
            const { id } = await s.tollgate.events.record(input);
            const listed = await s.tollgate.events.list({ customerId: input.customerId, limit: 1 });
            expect(listed.data[0], label).toMatchObject({ id, ...input });
          }
        }
      }
      for (const s of sql) {
        if (!rejectedBy.includes(s.name)) continue;
        await expect(s.tollgate.customers.create({ id: text }), s.name).rejects.toMatchObject({ code: 'invalid_request' });
        // Lookups with such a string are refused by validation like writes.
        await expect(s.tollgate.customers.retrieve(text)).rejects.toMatchObject({ code: 'invalid_request' });
        await expect(s.tollgate.events.list({ customerId: text })).rejects.toMatchObject({ code: 'invalid_request' });
        await expect(s.tollgate.events.getSummary({ dimensions: { model: text } })).rejects.toMatchObject({ code: 'invalid_request' });
      }
    }
    for (const s of sql) {
      const stored = (await s.tollgate.events.getSummary()).totalEvents;
      // Only free-form properties reach the store's own check; the other three inputs fail validation.
      const accepted = cases.filter((c) => !c.rejectedBy.includes(s.name)).length;
      expect(stored, `${s.name} stored only what it accepted`).toBe(accepted);
    }
  });
});
