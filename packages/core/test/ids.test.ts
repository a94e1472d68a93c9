import { describe, expect, it } from 'vitest';
import { newId } from '@tollgate/core';

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
  });

  it('keeps a prefix outside ASCII intact, astral characters included', () => {
    const id = newId('événement', 5);
    expect(id).toMatch(/^événement_000000005[0-9a-z]{12}$/);
    expect(newId('📈meter', 5)).toMatch(/^📈meter_000000005[0-9a-z]{12}$/u);
    expect(newId('événement', 5)).not.toBe(id);
  });
});
