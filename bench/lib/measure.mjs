// Small timing helpers shared by the benchmark scripts.
import os from 'node:os';

export const quick = process.argv.includes('--quick');

/**
 * Times `fn` once per iteration after a warm-up of at least `warmup` calls and `warmupMs`
 * milliseconds (the optimizing compiler settles on a path of many functions only after some
 * hundreds of milliseconds of calls); returns median, p10, p90 (µs) and ops/s.
 */
export async function latency(fn, { iterations = quick ? 5_000 : 50_000, warmup = quick ? 1_000 : 5_000, warmupMs = quick ? 200 : 1_000 } = {}) {
  const until = performance.now() + warmupMs;
  for (let i = 0; i < warmup || performance.now() < until; i++) await fn(i);
  const samples = new Float64Array(iterations);
  const begin = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    samples[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  const total = Number(process.hrtime.bigint() - begin) / 1e9;
  samples.sort();
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { median: at(0.5), p10: at(0.1), p90: at(0.9), opsPerSec: iterations / total };
}

/** Times one run of `fn` in milliseconds, `runs` times; returns the median and spread. */
export async function duration(fn, runs = quick ? 3 : 5) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], min: times[0], max: times[times.length - 1] };
}

/** The middle value of `xs` (the mean of the two middle ones for an even count). */
export function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * A confidence interval for the median of `xs` that assumes nothing about their distribution:
 * the l-th smallest and l-th largest value, with the largest l for which the pair holds the
 * median with probability ≥ `level` (each value falls below the median with probability 1/2, so
 * the count below is binomial). Few values cannot reach the level: with 6 the interval is the
 * whole range, at 96.9%. `coverage` is the probability the returned interval has.
 */
export function medianInterval(xs, level = 0.95) {
  const sorted = [...xs].sort((a, b) => a - b);
  const n = sorted.length;
  let l = 0;
  let term = 0.5 ** n; // P(exactly l values below the median)
  let tail = term; // P(at most l values below)
  while (2 * (l + 1) < n) {
    const next = (term * (n - l)) / (l + 1);
    if (1 - 2 * (tail + next) < level) break;
    term = next;
    tail += next;
    l++;
  }
  return { low: sorted[l], high: sorted[n - 1 - l], coverage: 1 - 2 * tail };
}

export const fmt = (n, digits = 2) => (n >= 100 ? n.toFixed(0) : n.toFixed(digits));

export function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

/** Prints a markdown table. */
export function table(headers, rows) {
  const lines = [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
  console.log(lines.join('\n'));
  return lines.join('\n');
}
