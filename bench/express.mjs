// One Express app, one run: a bare route, express-rate-limit (memory store) and @tollgate/express
// `meter` (memory store, request-count limit, check before and record after), plus `meter` with
// `estimate: {}` (an atomic reservation) for reference, and a floor: a middleware that only reads
// the customer header and sets four fixed draft-6 headers, the least any per-customer limiter that
// sends them does on Express. Uses the BUILT packages.
// Run: npm run build && node bench/express.mjs [--quick]
import { meter } from '@tollgate/express';
import { rateLimit } from 'express-rate-limit';
import { FLOOR, benchApp, benchTollgate, customerId, floor, ok } from './lib/express-routes.mjs';
import { compareRoutes, listen, pct, serving, span, targetLine } from './lib/http-load.mjs';

if (serving) {
  const tollgate = await benchTollgate();
  const app = benchApp();
  app.get('/floor', floor, ok);
  app.get('/express-rate-limit', rateLimit({ windowMs: 60_000, limit: 1e9, standardHeaders: 'draft-6', legacyHeaders: false, keyGenerator: customerId }), ok);
  app.get('/tollgate', meter(tollgate, { customerId, standardHeaders: 'draft-6' }), ok);
  app.get('/tollgate-reserve', meter(tollgate, { customerId, standardHeaders: 'draft-6', estimate: {} }), ok);
  listen(app);
} else {
  const results = await compareRoutes({
    title: '@tollgate/express vs bare Express and express-rate-limit',
    script: new URL(import.meta.url).pathname,
    routes: [
      { name: 'bare', path: '/bare', role: 'bare' },
      { name: FLOOR, path: '/floor' },
      { name: 'express-rate-limit', path: '/express-rate-limit', role: 'peer' },
      { name: 'tollgate meter (check + record)', path: '/tollgate' },
      { name: 'tollgate meter (reserve + commit)', path: '/tollgate-reserve' },
    ],
  });
  const t = results['tollgate meter (check + record)'];
  console.log(`\nTargets (req/s of the meter, check + record):\n- ${targetLine('≥ 90% of bare', t.vsBare, 0.9)}\n- ${targetLine('≥ express-rate-limit', t.vsPeer, 1)}`);
  const floor = results[FLOOR].vsBare;
  console.log(`\nThe floor, the least any per-customer limiter that sends these headers adds (one more middleware, a header read, four setHeader calls), keeps ${pct(floor.median)} of bare (interval ${span(floor)}).`);
}
