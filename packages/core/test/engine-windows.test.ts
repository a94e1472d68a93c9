import { describe, expect, test } from 'vitest';
import { createTollgate } from '@tollgate/core';

// The engine caches windows: day and week windows per timezone (shared by its customers), UTC
// periods once, month windows per customer. Customers checked alternately must each see their own.
describe('window caches', () => {
  test('customers in different timezones and billing anchors, checked alternately, each get their own windows', async () => {
    let clock = Date.parse('2026-03-10T02:30:00Z'); // still March 9 in New York, already March 10 in Tokyo
    const periods = ['minute', 'day', 'week', 'month'] as const;
    const tollgate = createTollgate({
      now: () => clock,
      meters: [{ id: 'requests', name: 'Requests', aggregation: 'count', field: '*' }],
      limits: periods.map((period) => ({ id: period, name: period, meterId: 'requests', limitValue: 10, period })),
    });
    await tollgate.customers.create({ id: 'ny', timezone: 'America/New_York', billingCycleStart: '2026-01-05T12:00:00-05:00' });
    await tollgate.customers.create({ id: 'tokyo', timezone: 'Asia/Tokyo', billingCycleStart: '2026-01-20T00:00:00+09:00' });
    await tollgate.customers.create({ id: 'tokyo-2', timezone: 'Asia/Tokyo', billingCycleStart: '2026-01-31T00:00:00+09:00' });
    const windows = async (customerId: string) =>
      Object.fromEntries((await tollgate.limits.check({ customerId })).limits.map((l) => [l.period, [l.windowStart, l.windowEnd]]));

    // Twice: the second round reads what the first one cached.
    for (let round = 0; round < 2; round++) {
      const ny = await windows('ny');
      const tokyo = await windows('tokyo');
      const tokyo2 = await windows('tokyo-2');
      expect(ny.minute).toEqual(['2026-03-10T02:30:00.000Z', '2026-03-10T02:31:00.000Z']);
      expect(tokyo.minute).toEqual(ny.minute);
      expect(ny.day).toEqual(['2026-03-09T04:00:00.000Z', '2026-03-10T04:00:00.000Z']); // EDT since March 8
      expect(tokyo.day).toEqual(['2026-03-09T15:00:00.000Z', '2026-03-10T15:00:00.000Z']);
      expect(tokyo2.day).toEqual(tokyo.day);
      expect(ny.week).toEqual(['2026-03-09T04:00:00.000Z', '2026-03-16T04:00:00.000Z']); // Monday March 9
      expect(tokyo.week).toEqual(['2026-03-08T15:00:00.000Z', '2026-03-15T15:00:00.000Z']);
      expect(ny.month).toEqual(['2026-03-05T05:00:00.000Z', '2026-04-05T04:00:00.000Z']);
      expect(tokyo.month).toEqual(['2026-02-19T15:00:00.000Z', '2026-03-19T15:00:00.000Z']);
      expect(tokyo2.month).toEqual(['2026-02-27T15:00:00.000Z', '2026-03-30T15:00:00.000Z']);
    }
    // A day later: the day windows move on, for each customer in their own timezone.
    clock += 86_400_000;
    expect((await windows('ny')).day).toEqual(['2026-03-10T04:00:00.000Z', '2026-03-11T04:00:00.000Z']);
    expect((await windows('tokyo')).day).toEqual(['2026-03-10T15:00:00.000Z', '2026-03-11T15:00:00.000Z']);
  });
});
