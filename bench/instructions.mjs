// Instructions per request, counted by callgrind: bare Express, the floor (a middleware that reads
// the customer header and sets four fixed rate-limit headers), express-rate-limit and
// @tollgate/express `meter`, the routes of bench/express.mjs, each in its own valgrind'ed app.
// Unlike req/s, the count repeats from run to run (within about 1%) on a busy machine, so it can
// tell apart changes of a few percent. It leaves out what instructions do not show (cache misses,
// the GC's helper threads): req/s from bench/express.mjs stays the measure of the targets.
// Needs valgrind. Run: npm run build && node bench/instructions.mjs [--quick]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { FLOOR } from './lib/express-routes.mjs';
import { CUSTOMER, CUSTOMER_HEADER } from './lib/http-load.mjs';
import { fmt, machine, quick, table } from './lib/measure.mjs';

if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.log('# Instructions per request (callgrind)\n\nSkipped: valgrind is not installed (Debian: apt-get install valgrind).');
  process.exit(0);
}

const warm = quick ? 2_000 : 5_000;
const count = quick ? 3_000 : 20_000;
const script = new URL('./express.mjs', import.meta.url).pathname;
const routes = [
  { name: 'bare', path: '/bare' },
  { name: FLOOR, path: '/floor' },
  { name: 'express-rate-limit', path: '/express-rate-limit' },
  { name: 'tollgate meter (check + record)', path: '/tollgate' },
];

async function instructionsPerRequest(route) {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-callgrind-'));
  // --single-threaded: the optimizing compiler and the GC run on the main thread, where callgrind counts them.
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'out')}`, process.execPath, '--single-threaded', script, '--serve'], {
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: { ...process.env, TOLLGATE_BENCH_CALLGRIND: `${warm}:${count}` },
  });
  try {
    const port = await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`valgrind exited with code ${code}; is valgrind installed?`)));
      child.once('message', (m) => resolve(m.port));
    });
    child.removeAllListeners('exit');
    await new Promise((resolve, reject) => autocannon({
      url: `http://127.0.0.1:${port}${route.path}`, headers: { [CUSTOMER_HEADER]: CUSTOMER }, connections: 4, amount: warm + count + 100, timeout: 60,
    }, (error, result) => (error ? reject(error) : resolve(result))));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    const dump = readdirSync(dir).find((f) => /^out\.\d+$/.test(f));
    if (!dump) throw new Error(`no callgrind dump for ${route.name}: the app saw fewer than ${warm + count} requests`);
    const total = Number(/^summary:\s*(\d+)/m.exec(readFileSync(join(dir, dump), 'utf8'))[1]);
    return total / count;
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// Two at a time: valgrind runs one thread, and autocannon needs some of the other core.
const results = new Map();
for (let i = 0; i < routes.length; i += 2) {
  await Promise.all(routes.slice(i, i + 2).map(async (r) => results.set(r.name, await instructionsPerRequest(r))));
}
const bare = results.get('bare');
const peer = results.get('express-rate-limit');
console.log(`# Instructions per request (callgrind)\n\n${machine()}; ${fmt(count, 0)} requests counted after ${fmt(warm, 0)} of warm-up, 4 connections${quick ? ' (quick run)' : ''}\n`);
table(['route', 'instructions/request', 'bare ÷ route', 'express-rate-limit ÷ route'], routes.map((r) => {
  const n = results.get(r.name);
  return [r.name, fmt(n / 1000, 1) + 'k', `${fmt((bare / n) * 100, 1)}%`, `${fmt((peer / n) * 100, 1)}%`];
}));
console.log('\n"bare ÷ route" is the throughput the route would have next to bare if time followed instructions. The floor is the least any per-customer limiter that sends the draft-6 headers adds on Express: one more middleware, a header read and four `setHeader` calls.');
