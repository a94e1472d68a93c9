// The statistics the benchmarks report their ratios with: a verdict on a target is only as good
// as the interval it rests on.
import { describe, expect, test } from 'vitest';
// @ts-expect-error: a plain .mjs module of the benchmark folder, without types
import { median, medianInterval } from '../bench/lib/measure.mjs';
// @ts-expect-error: as above
import { roundsFrom, targetLine } from '../bench/lib/http-load.mjs';

const ranks = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('medianInterval', () => {
  // Order-statistic intervals for the median at 95%, as in the published tables (n: 1-based ranks).
  test.each([
    [6, 1, 6, 0.96875],
    [10, 2, 9, 0.978515625],
    [15, 4, 12, 0.96484375],
    [20, 6, 15, 0.958610534668],
    [30, 10, 21, 0.957226],
  ])('n = %i: ranks %i and %i, coverage %f', (n, low, high, coverage) => {
    const r = medianInterval(ranks(n).reverse());
    expect([r.low + 1, r.high + 1]).toEqual([low, high]);
    expect(r.coverage).toBeCloseTo(coverage, 5);
    expect(r.coverage).toBeGreaterThanOrEqual(0.95);
  });

  test('too few values cannot reach the level: the whole range, and the coverage it has', () => {
    expect(medianInterval([3, 1])).toEqual({ low: 1, high: 3, coverage: 0.5 });
    expect(medianInterval([2])).toEqual({ low: 2, high: 2, coverage: 0 });
  });

  test('holds the median of the values, and does not reorder them', () => {
    const xs = [0.91, 0.8, 1.12, 0.86, 0.95, 0.7, 0.88, 0.9, 1.3, 0.84, 0.87, 0.93, 0.99, 0.6, 0.89];
    const copy = [...xs];
    const r = medianInterval(xs);
    expect(r.low).toBeLessThanOrEqual(median(xs));
    expect(r.high).toBeGreaterThanOrEqual(median(xs));
    expect([r.low, r.high]).toEqual([0.84, 0.95]);
    expect(xs).toEqual(copy);
  });

  test('a lower level gives a narrower interval', () => {
    const wide = medianInterval(ranks(40), 0.99);
    const narrow = medianInterval(ranks(40), 0.8);
    expect(narrow.high - narrow.low).toBeLessThan(wide.high - wide.low);
    expect(wide.coverage).toBeGreaterThanOrEqual(0.99);
    expect(narrow.coverage).toBeGreaterThanOrEqual(0.8);
  });
});

describe('targetLine', () => {
  const ratio = (median: number, low: number, high: number) => ({ median, low, high, coverage: 0.9648 });

  test('met only when the whole interval clears the target', () => {
    expect(targetLine('≥ 90% of bare', ratio(0.93, 0.9, 0.95), 0.9)).toBe('≥ 90% of bare → 93.0% (96.5% interval 90.0%–95.0%): met');
  });

  test('not met when the whole interval is below it', () => {
    expect(targetLine('≥ 90% of bare', ratio(0.85, 0.82, 0.89), 0.9)).toMatch(/: NOT met$/);
  });

  test('unresolved when the interval holds the target, whichever side the median is on', () => {
    expect(targetLine('≥ 90% of bare', ratio(0.92, 0.86, 0.97), 0.9)).toMatch(/: unresolved by this run/);
    expect(targetLine('≥ 90% of bare', ratio(0.88, 0.86, 0.97), 0.9)).toMatch(/: unresolved by this run/);
  });
});

describe('roundsFrom (--rounds=N)', () => {
  test('absent: undefined, so the default count stands', () => {
    expect(roundsFrom(['node', 'bench/express.mjs', '--quick'])).toBeUndefined();
  });

  test('a whole number of at least 6 is the count', () => {
    expect(roundsFrom(['node', 'bench/express.mjs', '--rounds=60'])).toBe(60);
    expect(roundsFrom(['--rounds=6'])).toBe(6);
  });

  test.each(['--rounds=5', '--rounds=0', '--rounds=2.5', '--rounds=many', '--rounds='])('%s is refused with what to give instead', (arg) => {
    expect(() => roundsFrom([arg])).toThrow(/give a whole number of rounds, at least 6/);
  });
});
