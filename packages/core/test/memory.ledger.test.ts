import { describe, expect, test } from 'vitest';
import { memoryStore, newId, type StoredEvent } from '@tollgate/core';

// The memory store keeps events in columns (src/event-log.ts): ids and reservation keys in the
// engine's format as numbers, anything else as strings, values and dimensions as shapes plus
// entries. These tests read back what went in, exactly, in (timestamp, id) order.

const T0 = Date.parse('2026-06-01T12:00:00.000Z');

function event(over: Partial<StoredEvent> & { timestamp: number }): StoredEvent {
  return { id: newId('evt', over.timestamp), customerId: 'c', eventType: 'llm.completion', values: {}, dimensions: {}, ...over };
}

describe('memory store ledger (columns)', () => {
  test('reads back every field exactly: engine and other ids and keys, values, dimensions, properties', async () => {
    const store = memoryStore();
    const events: StoredEvent[] = [
      event({ timestamp: T0, values: { tokens: 12, cost: 0.125, neg: -0, big: 2 ** 53 - 1, 7: 1 }, dimensions: { model: 'gpt-4o', '1': 'x' }, idempotencyKey: newId('rsv', T0 - 5) }),
      event({ timestamp: T0 + 1, id: 'custom-id', idempotencyKey: 'user-key', properties: { nested: { a: [1, 2] } } }),
      event({ timestamp: T0 + 2, id: 'evt_ABC', idempotencyKey: 'rsv_not-the-engine-form', customerId: 'other', eventType: 'api.call' }),
      event({ timestamp: T0 + 3, values: { cost: 1.5, tokens: 3 }, dimensions: { region: 'eu', model: 'claude' } }),
    ];
    expect(await store.insertEvents(events)).toEqual(events.map((e) => ({ id: e.id, recorded: true })));
    const listed = [...(await store.listEvents({ customerId: 'c' }, 10)), ...(await store.listEvents({ customerId: 'other' }, 10))];
    const byId = new Map(listed.map((e) => [e.id, e]));
    for (const e of events) {
      const got = byId.get(e.id)!;
      expect(got).toEqual(e);
      // Key order of values and dimensions is kept too.
      expect(Object.keys(got.values)).toEqual(Object.keys(e.values));
      expect(Object.keys(got.dimensions)).toEqual(Object.keys(e.dimensions));
    }
    expect(Object.is(byId.get(events[0].id)!.values.neg, -0)).toBe(true);
  });

  test('a listed event is a copy: changing it changes nothing kept', async () => {
    const store = memoryStore();
    const e = event({ timestamp: T0, values: { tokens: 5 }, dimensions: { model: 'm' } });
    await store.insertEvents([e]);
    const [first] = await store.listEvents({}, 1);
    first.values.tokens = 500;
    first.dimensions.model = 'changed';
    expect(await store.summarize({})).toEqual({ totalEvents: 1, values: { tokens: 5 } });
    expect((await store.listEvents({}, 1))[0]).toEqual(e);
  });

  test('keeps (timestamp, id) order for backdated events and mixes of engine and other ids', async () => {
    const store = memoryStore();
    const times = [5, 1, 3, 3, 0, 5, 2, 3, 4, 1];
    const events = times.map((t, i) =>
      event({ timestamp: T0 + t, id: i % 3 === 0 ? `evt_custom_${String(i).padStart(2, '0')}` : newId('evt', T0 + t), customerId: i % 2 ? 'a' : 'b' }),
    );
    for (const e of events) await store.insertEvents([e]);
    const newestFirst = (list: StoredEvent[]) => [...list].sort((x, y) => y.timestamp - x.timestamp || (y.id < x.id ? -1 : y.id > x.id ? 1 : 0)).map((e) => e.id);
    expect((await store.listEvents({}, 100)).map((e) => e.id)).toEqual(newestFirst(events));
    expect((await store.listEvents({ customerId: 'a' }, 100)).map((e) => e.id)).toEqual(newestFirst(events.filter((e) => e.customerId === 'a')));
    // Keyset pages walk the same order.
    const pages: string[] = [];
    let cursor: { timestamp: number; id: string } | undefined;
    for (;;) {
      const page = await store.listEvents({}, 3, cursor);
      if (page.length === 0) break;
      pages.push(...page.map((e) => e.id));
      const last = page[page.length - 1];
      cursor = { timestamp: last.timestamp, id: last.id };
    }
    expect(pages).toEqual(newestFirst(events));
  });

  test('summaries, breakdowns and meter states read the columns with every filter', async () => {
    const store = memoryStore();
    await store.insertEvents([
      event({ timestamp: T0, values: { tokens: 10 }, dimensions: { model: 'a', region: 'eu' } }),
      event({ timestamp: T0 + 1, values: { tokens: 20 }, dimensions: { model: 'b' } }),
      event({ timestamp: T0 + 2, values: { tokens: 30, cost: 1 }, dimensions: { model: 'a' }, eventType: 'other' }),
      event({ timestamp: T0 + 3, values: { cost: 2 }, customerId: 'd', dimensions: { model: 'a', region: 'eu' } }),
    ]);
    expect(await store.summarize({ dimensions: { model: 'a' } })).toEqual({ totalEvents: 3, values: { tokens: 40, cost: 3 } });
    expect(await store.summarize({ eventType: 'llm.completion', dimensions: { region: 'eu' } })).toEqual({ totalEvents: 2, values: { tokens: 10, cost: 2 } });
    expect(await store.summarize({ customerId: 'nobody' })).toEqual({ totalEvents: 0, values: {} });
    expect(await store.summarize({ eventType: 'never' })).toEqual({ totalEvents: 0, values: {} });
    expect(await store.summarize({ startDate: T0 + 1, endDate: T0 + 3 })).toEqual({ totalEvents: 2, values: { tokens: 50, cost: 1 } });
    const byModel = await store.breakdown({}, 'region');
    expect(byModel.sort((x, y) => String(x.dimension).localeCompare(String(y.dimension)))).toEqual([
      { dimension: 'eu', totalEvents: 2, values: { tokens: 10, cost: 2 } },
      { dimension: null, totalEvents: 2, values: { tokens: 50, cost: 1 } },
    ]);
    expect(await store.timeseries({ customerId: 'c' }, [T0, T0 + 2, T0 + 4])).toEqual([
      { totalEvents: 2, values: { tokens: 30 } },
      { totalEvents: 1, values: { tokens: 30, cost: 1 } },
    ]);
    expect(await store.meterState({ aggregation: 'unique', field: 'dimensions.model', customerId: 'c', eventFilter: { eventType: 'llm.completion' } })).toMatchObject({ count: 2, distinct: 2 });
    expect(await store.meterState({ aggregation: 'sum', field: 'values.tokens', eventFilter: { dimensions: { model: 'a' } }, dimensionFilters: { region: 'eu' } })).toMatchObject({ count: 1, sum: 10 });
  });
});
