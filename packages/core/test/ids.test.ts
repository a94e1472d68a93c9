import { describe, expect, it } from 'vitest';
import { createTollgate, newId } from '@tollgate/core';
import { idPartsOf } from '../src/ids.js';

describe('newId', () => {
  it('is the prefix, the time in base 36, then 12 characters that keep one millisecond in creation order', () => {
    const at = Date.parse('2026-11-26T12:00:00.123Z');
    const ids = Array.from({ length: 2000 }, () => newId('evt', at));
    for (const id of ids) expect(id).toMatch(new RegExp(`^evt_${at.toString(36).padStart(9, '0')}[0-9a-z]{12}$`));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    // A later millisecond sorts after, and prefixes keep their own ids.
    expect(newId('evt', at + 1) > ids[ids.length - 1]).toBe(true);
    expect(newId('rsv', at)).toMatch(/^rsv_/);
  });

  it('writes the time right from one call to the next: carries across digits, jumps back and forth', () => {
    const base = Date.parse('2026-11-26T12:00:00Z');
    const carry = base - (base % 36 ** 3) + 36 ** 3 - 1; // the next millisecond carries three digits
    const times = [carry, carry + 1, carry + 2, carry - 5, base, base + 36 ** 5, 0, 36 ** 9 - 1, base + 1];
    for (const at of times) {
      for (const prefix of ['evt', 'rsv']) expect(newId(prefix, at).slice(4, 13)).toBe(at.toString(36).padStart(9, '0'));
    }
    // Every millisecond across a change of the first seven digits, then times anywhere in the range.
    const edge = base - (base % 36 ** 2) + 36 ** 2;
    const more = [...Array.from({ length: 40 }, (_, i) => edge - 20 + i), ...Array.from({ length: 500 }, () => Math.floor(Math.random() * 36 ** 9))];
    for (const at of more) expect(newId('evt', at).slice(4, 13)).toBe(at.toString(36).padStart(9, '0'));
  });

  it('draws the 8 random characters from the whole alphabet, each about equally often', () => {
    const counts = new Map<string, number>();
    const n = 20_000;
    for (let i = 0; i < n; i++) for (const c of newId('evt').slice(-8)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(36);
    // 160,000 characters: about 4,444 each; a bias of a few percent (two bytes per two digits) stays well inside ±10%.
    for (const count of counts.values()) expect(Math.abs(count / ((n * 8) / 36) - 1)).toBeLessThan(0.1);
  });

  it('keeps a prefix outside ASCII intact, astral characters included', () => {
    const id = newId('événement', 5);
    expect(id).toMatch(/^événement_000000005[0-9a-z]{12}$/);
    expect(newId('📈meter', 5)).toMatch(/^📈meter_000000005[0-9a-z]{12}$/u);
    expect(newId('événement', 5)).not.toBe(id);
  });

  it('writes a time before 1970 or past what 9 digits hold as the nearest one they hold, in plain digits', () => {
    expect(newId('evt', -1)).toMatch(/^evt_000000000[0-9a-z]{12}$/);
    expect(newId('evt', Date.parse('1900-01-01T00:00:00Z'))).toMatch(/^evt_000000000[0-9a-z]{12}$/);
    expect(newId('evt', 36 ** 9 + 5)).toMatch(/^evt_zzzzzzzzz[0-9a-z]{12}$/);
    expect(newId('evt', 1.5)).toMatch(/^evt_000000001[0-9a-z]{12}$/);
  });

  it('remembers the parts of the last id of each prefix as numbers, and only of that id', () => {
    const at = Date.parse('2026-11-26T12:00:00.123Z');
    const id = newId('evt', at);
    const digits = (from: number, to: number) => parseInt(id.slice(from, to), 36);
    expect(idPartsOf(id, 'evt')).toEqual([digits(4, 13), digits(13, 17), digits(17, 25)]);
    const reservation = newId('rsv', at);
    expect(idPartsOf(id, 'evt')).toEqual([digits(4, 13), digits(13, 17), digits(17, 25)]);
    expect(idPartsOf(reservation, 'evt')).toBeUndefined();
    expect(idPartsOf(id, 'rsv')).toBeUndefined();
    expect(idPartsOf(`${id}`.replace(/.$/, (c) => (c === '0' ? '1' : '0')), 'evt')).toBeUndefined();
    newId('evt', at);
    expect(idPartsOf(id, 'evt')).toBeUndefined();
  });

  it('events from before 1970 and far in the future keep plain ids the memory store gives back as they were', async () => {
    const tollgate = createTollgate();
    const times = ['1900-01-01T00:00:00Z', '1969-12-31T23:59:59.999Z', '+010000-01-01T00:00:00Z', '2026-11-26T12:00:00Z'];
    const recorded = [];
    for (const timestamp of times) recorded.push((await tollgate.events.record({ customerId: 'c', eventType: 'x', timestamp })).id);
    for (const id of recorded) expect(id).toMatch(/^evt_[0-9a-z]{21}$/);
    const listed = (await tollgate.events.list({ customerId: 'c' })).data;
    // Newest first.
    const expected = recorded.map((id, i) => [id, new Date(Date.parse(times[i])).toISOString()] as const).sort((a, b) => Date.parse(b[1]) - Date.parse(a[1]));
    expect(listed.map((e) => [e.id, e.timestamp])).toEqual(expected);
    await tollgate.close();
  });
});
