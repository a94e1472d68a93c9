import { afterAll, describe, expect, test } from 'vitest';
import Database from 'better-sqlite3';
import { emptyState, memoryStore, usedWith, type CounterSlot, type CounterStore } from '@tollgate/core';
import { sqliteStore } from '@tollgate/core/sqlite';

// With several open holds, a latest meter reads the newest reservation's, by hold id: ids sort
// by when the reservations were made. Concurrent callers can place holds in another order (two
// reservations racing through an async store), so the order they were placed must not decide.
// The conformance suite covers holds placed in id order with different ttls on every store.

const T0 = Date.parse('2026-06-01T12:00:10.000Z');
const DAY = 86_400_000;
const windowStart = Date.parse('2026-06-01T00:00:00.000Z');

function slot(contribution: number | null): CounterSlot {
  return {
    key: `lat@1|c|${windowStart}`,
    limitKey: 'lat@1',
    limitId: 'lat',
    customerId: 'c',
    windowStart,
    windowEnd: windowStart + DAY,
    aggregation: 'latest',
    limitValue: 1000,
    mode: 'hard',
    contribution,
    thresholds: [],
    source: { aggregation: 'latest', field: 'values.latency', customerId: 'c', startDate: windowStart, endDate: windowStart + DAY },
  };
}

const databases: Database.Database[] = [];
afterAll(() => databases.forEach((db) => db.close()));

const stores: Array<[string, () => CounterStore & { init?(): Promise<void> }]> = [
  ['memory store', () => memoryStore()],
  ['SQLite store', () => sqliteStore({ database: databases[databases.push(new Database(':memory:')) - 1] })],
];

describe.each(stores)('latest with holds placed out of id order: %s', (_name, make) => {
  test('reads the hold with the greatest id, not the one placed last', async () => {
    const store = make();
    await store.init?.();
    const reserve = (holdId: string, amount: number) => store.apply({ type: 'reserve', now: T0, holdId, expiresAt: T0 + 60_000, slots: [slot(amount)] });
    const used = async () => (await store.apply({ type: 'check', now: T0, slots: [slot(null)] })).slots[0].used;
    await reserve('rsv_0000000002', 20);
    await reserve('rsv_0000000001', 50);
    expect(await used()).toBe(20);
    await reserve('rsv_0000000003', 30);
    expect(await used()).toBe(30);
    await store.apply({ type: 'release', now: T0, holdId: 'rsv_0000000003', slots: [slot(30)] });
    expect(await used()).toBe(20);
  });
});

test('usedWith takes holds in any order: latest reads the greatest hold id, max the largest, sum all', () => {
  const state = { ...emptyState(), count: 2, sum: 10, min: 4, max: 6, latest: 4, latestAt: T0 };
  const holds: Array<[string, number]> = [['rsv_b', 5], ['rsv_c', 3], ['rsv_a', 9]];
  for (const order of [holds, [...holds].reverse(), [holds[1], holds[0], holds[2]]]) {
    expect(usedWith('latest', state, order)).toBe(3);
    expect(usedWith('max', state, order)).toBe(9);
    expect(usedWith('sum', state, order)).toBe(27);
    expect(usedWith('count', state, order)).toBe(19);
  }
  expect(usedWith('latest', state, [])).toBe(4);
  expect(usedWith('min', state, holds)).toBe(4);
});
