// Load-testing helpers for the framework benchmarks: the app runs in a child process (so the
// load generator does not share its event loop) on 127.0.0.1, and autocannon measures each of
// its routes in turn.
import { execFileSync, fork } from 'node:child_process';
import autocannon from 'autocannon';
import { fmt, machine, median, medianInterval, quick, table } from './measure.mjs';

/** True in the child process that serves the app. */
export const serving = process.argv.includes('--serve');

/**
 * In the child: reports the listening port to the parent, then answers CPU-time queries. Under
 * callgrind (bench/instructions.mjs sets TOLLGATE_BENCH_CALLGRIND=warm:count), it zeroes the
 * counts after `warm` requests and dumps them after `count` more, so the dump holds exactly
 * `count` requests in steady state on the same connections.
 */
export function announce(server) {
  const window = process.env.TOLLGATE_BENCH_CALLGRIND?.split(':').map(Number);
  if (window) {
    const [warm, count] = window;
    let seen = 0;
    server.on('request', () => {
      seen++;
      if (seen === warm) execFileSync('callgrind_control', ['--zero', String(process.pid)], { stdio: 'ignore' });
      if (seen === warm + count) execFileSync('callgrind_control', ['--dump', String(process.pid)], { stdio: 'ignore' });
    });
  }
  process.on('message', (message) => {
    if (message === 'cpu') process.send({ cpu: process.cpuUsage() });
  });
  process.send({ port: server.address().port });
}

/** The customer every benchmark request comes from, named in the header every limiter here keys on. */
export const CUSTOMER = 'cus_bench';
export const CUSTOMER_HEADER = 'x-customer-id';

/** In the app: an Express-style app listens on a free local port and tells the parent (see {@link announce}). */
export function listen(app) {
  const server = app.listen(0, '127.0.0.1', () => announce(server));
  return server;
}

/** In the parent: forks `script --serve` and resolves with its base URL and a stop function. */
export function startServer(script) {
  const child = fork(script, ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the benchmark app exited with code ${code} before listening`)));
    child.once('message', ({ port }) => {
      child.removeAllListeners('exit');
      resolve({
        url: `http://127.0.0.1:${port}`,
        /** CPU time the app has used so far, in µs (unlike req/s, not slowed by other processes on the machine). */
        cpu: () => new Promise((done) => {
          child.once('message', ({ cpu }) => done(cpu.user + cpu.system));
          child.send('cpu');
        }),
        stop: () => new Promise((done) => { child.once('exit', done); child.kill('SIGTERM'); }),
      });
    });
  });
}

/** A ratio as a percentage with one decimal. */
export const pct = (x) => `${fmt(x * 100, 1)}%`;

/** An interval of ratios, `low–high`, as percentages. */
export const span = ({ low, high }) => `${pct(low)}–${pct(high)}`;

/** `--rounds=N` among command-line arguments, if given. */
export function roundsFrom(argv) {
  const arg = argv.find((a) => a.startsWith('--rounds='));
  if (arg === undefined) return undefined;
  const n = Number(arg.slice('--rounds='.length));
  if (!Number.isInteger(n) || n < 6) throw new Error(`${arg}: give a whole number of rounds, at least 6 (fewer cannot reach a 95% interval for the median).`);
  return n;
}

function run(options) {
  return new Promise((resolve, reject) => {
    autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

/**
 * Measures every route of one app, in one run, and prints req/s and ratios against the bare
 * route and the peer. The routes take turns in short rounds (15 × 2 s each; `--quick`: 3 × 1 s;
 * `--rounds=N` sets the count; on a steady machine the intervals narrow as 1/√N),
 * each round starting one route further on, and a ratio is the median over rounds of the
 * route's req/s to the bare route's in the same round: on a shared machine whose speed drifts
 * by tens of percent within seconds, routes measured side by side compare steadily, where totals
 * over a whole run let one slow stretch decide. Beside each median stands its 95% interval
 * ({@link medianInterval}): how far the run can tell a ratio from a target. Requests carry
 * `headers`, by default the benchmark customer's header.
 */
export async function compareRoutes({ title, script, routes, headers = { [CUSTOMER_HEADER]: CUSTOMER }, connections = 10 }) {
  const warmup = quick ? 1 : 3;
  const seconds = quick ? 1 : 2;
  const rounds = roundsFrom(process.argv) ?? (quick ? 3 : 15);
  const server = await startServer(script);
  const totals = new Map(routes.map((r) => [r.name, { requests: 0, seconds: 0, p99: [], non2xx: 0, cpu: 0, rates: [] }]));
  try {
    for (const route of routes) await run({ url: server.url + route.path, headers, connections, duration: warmup });
    for (let round = 0; round < rounds; round++) {
      const first = round % routes.length;
      for (const route of [...routes.slice(first), ...routes.slice(0, first)]) {
        const cpuBefore = await server.cpu();
        const result = await run({ url: server.url + route.path, headers, connections, duration: seconds });
        const t = totals.get(route.name);
        t.cpu += (await server.cpu()) - cpuBefore;
        t.requests += result.requests.total;
        t.seconds += result.duration;
        t.rates.push(result.requests.total / result.duration);
        t.p99.push(result.latency.p99);
        t.non2xx += result.non2xx + result.errors;
      }
    }
  } finally {
    await server.stop();
  }
  const bare = routes.find((r) => r.role === 'bare').name;
  const peer = routes.find((r) => r.role === 'peer').name;
  /** The route's req/s over `base`'s, round by round: their median and its interval. */
  const against = (name, base) => {
    const ratios = totals.get(name).rates.map((r, i) => r / totals.get(base).rates[i]);
    return { median: median(ratios), ...medianInterval(ratios) };
  };
  const results = Object.fromEntries(routes.map(({ name }) => {
    const t = totals.get(name);
    return [name, { reqPerSec: t.requests / t.seconds, vsBare: against(name, bare), vsPeer: against(name, peer), cpuPerRequest: t.cpu / t.requests }];
  }));
  const level = pct(results[bare].vsBare.coverage);
  console.log(`# ${title}\n\n${machine()}, ${connections} connections, ${rounds} rounds of ${seconds} s per route${quick ? ' (quick run)' : ''}\n`);
  table(
    ['route', 'req/s', 'vs bare (median)', `vs bare, ${level} interval`, `vs ${peer} (median)`, `vs ${peer}, ${level} interval`, 'app CPU µs/req', 'p99 ms', 'non-2xx'],
    routes.map(({ name }) => {
      const t = totals.get(name);
      const r = results[name];
      return [
        name,
        fmt(r.reqPerSec, 0),
        pct(r.vsBare.median),
        span(r.vsBare),
        pct(r.vsPeer.median),
        span(r.vsPeer),
        fmt(r.cpuPerRequest, 1),
        String(Math.max(...t.p99)),
        String(t.non2xx),
      ];
    }),
  );
  console.log('\nreq/s and app CPU µs/req both move with the machine (on a shared VM, by up to 2× within seconds); the ratios compare routes measured side by side, round by round.');
  return results;
}

/**
 * One line per target: the measured ratio (from {@link compareRoutes}) with its interval, and a
 * verdict that claims only what the interval shows: met when all of it is at or above the
 * target, not met when all of it is below, unresolved when it holds the target.
 */
export function targetLine(label, ratio, target) {
  const verdict = ratio.low >= target ? 'met' : ratio.high < target ? 'NOT met' : 'unresolved by this run (the interval holds the target)';
  return `${label} → ${pct(ratio.median)} (${pct(ratio.coverage)} interval ${span(ratio)}): ${verdict}`;
}
