import { describe, expect, test } from 'vitest';
import { createTollgate, memoryStore, type CreateLimitInput, type CreateMeterInput } from '@tollgate/core';

const T0 = Date.parse('2026-06-01T12:00:10.000Z');
const meters: CreateMeterInput[] = [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }];
const limits: CreateLimitInput[] = [{ id: 'per-minute', name: 'Tokens per minute', meterId: 'tokens', limitValue: 100, period: 'minute', alertThresholds: [50] }];

describe('memoryStore', () => {
  // The store keeps a customer's slots, events and idempotency keys in one record; the sweep of
  // ended windows must drop the slots only.
  test('the sweep of ended windows keeps the events and idempotency keys of their customers, and a swept window is rebuilt from them', async () => {
    let clock = T0;
    const alerts: number[] = [];
    const tollgate = createTollgate({ store: memoryStore(), meters, limits, now: () => clock, onAlert: (a) => { alerts.push(a.threshold); } });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 60 }, idempotencyKey: 'once' });
    const held = await tollgate.reserve({ customerId: 'c', eventType: 'llm', estimate: { tokens: 5 } });
    await held.commit({ values: { tokens: 4 } });
    expect(alerts).toEqual([50]);

    clock += 120_000;
    // Every counters operation counts; one of these triggers the sweep.
    for (let i = 0; i < 8192; i++) await tollgate.limits.check({ customerId: `other-${i % 7}` });

    const listed = await tollgate.events.list({ customerId: 'c' });
    expect(listed.data.map((e) => e.values.tokens)).toEqual([4, 60]);
    expect(await tollgate.events.getSummary({ customerId: 'c' })).toEqual({ totalEvents: 2, values: { tokens: 64 } });
    expect(await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 60 }, idempotencyKey: 'once' })).toEqual({ id: listed.data[1].id, recorded: false });
    expect((await held.commit({ values: { tokens: 4 } })).recorded).toBe(false);

    // A late event for the swept window: its slot is rebuilt from the kept events, and the
    // threshold it had already reached does not alert again.
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 10 }, timestamp: new Date(T0) });
    expect(alerts).toEqual([50]);
    expect((await tollgate.meters.query('tokens', { customerId: 'c', startDate: new Date(T0 - 10_000), endDate: new Date(T0 + 50_000) })).value).toBe(74);
    const check = await tollgate.limits.check({ customerId: 'c' });
    expect(check.limits[0].used).toBe(0);
  });

  // A slot that was swept is rebuilt from the ledger; one that was kept is not. An event written
  // to the ledger alone (bypassing the counters) tells the two apart: the kept slot misses it, so
  // a later backdated event crosses the 50% threshold there and alerts; the rebuilt slot counts
  // it and knows the threshold was already reached in that window.
  async function sweepCase(withLapsedHold: boolean) {
    let clock = T0;
    const alerts: number[] = [];
    const store = memoryStore();
    const tollgate = createTollgate({ store, meters, limits, now: () => clock, onAlert: (a) => { alerts.push(a.threshold); } });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 40 } });
    if (withLapsedHold) expect((await tollgate.reserve({ customerId: 'c', eventType: 'llm', estimate: { tokens: 5 }, ttlMs: 1000 })).allowed).toBe(true);
    await store.insertEvents([{ id: 'evt_ledger_only', customerId: 'c', eventType: 'llm', values: { tokens: 20 }, dimensions: {}, timestamp: T0 + 1000 }]);
    clock += 120_000;
    for (let i = 0; i < 8192; i++) await tollgate.limits.check({ customerId: `other-${i % 7}` });
    await tollgate.events.record({ customerId: 'c', eventType: 'llm', values: { tokens: 15 }, timestamp: new Date(T0 + 2000) });
    return alerts;
  }

  test('the sweep drops the slots of ended windows: a later event finds the window rebuilt from the ledger', async () => {
    expect(await sweepCase(false)).toEqual([]);
  });

  test('the sweep drops an ended window whose only hold has lapsed', async () => {
    expect(await sweepCase(true)).toEqual([]);
  });
});
