// Where the share of bare Express that `meter` gives up goes, step by step, in one app and one
// run: each route adds one thing to the one before it.
//   floor        one middleware that reads the customer header and sets four fixed draft-6 headers
//   no counting  + a 'close' listener per response and the headers worked out by rateLimitHeaders
//                  from a fixed decision: a limiter that counts nothing
//   by hand      + the check before and the record after (core's startMetering and settle),
//                  in the fewest lines a middleware can have
//   meter        + the adapter: options, callbacks, req.tollgate, recordWhen, error answers
// Uses the BUILT packages. Run: npm run build && node bench/express-breakdown.mjs [--quick]
import { rateLimitHeaders, startMetering } from '@tollgate/core';
import { meter } from '@tollgate/express';
import { FLOOR, benchApp, benchTollgate, customerId, floor, ok } from './lib/express-routes.mjs';
import { CUSTOMER, compareRoutes, listen, pct, serving } from './lib/http-load.mjs';

const HEADERS = { standardHeaders: 'draft-6', legacyHeaders: false };
const STEPS = [
  { name: 'bare', path: '/bare', role: 'bare' },
  { name: FLOOR, path: '/floor' },
  { name: 'no counting (+ close listener, computed headers)', path: '/no-counting' },
  { name: 'by hand (+ check before, record after)', path: '/by-hand' },
  { name: 'tollgate meter (+ the adapter)', path: '/tollgate', role: 'peer' },
];

function setHeaders(res, headers) {
  for (const name in headers) res.setHeader(name, headers[name]);
}

if (serving) {
  const tollgate = await benchTollgate();
  const { limits } = await tollgate.limits.check({ customerId: CUSTOMER, eventType: 'http.request' });
  // What the no-counting route's listener does in place of a record: reads the status, as
  // recordWhen does, and keeps a count, so the listener is not empty.
  let finished = 0;
  const app = benchApp();
  app.get('/floor', floor, ok);
  app.get('/no-counting', (req, res, next) => {
    customerId(req);
    res.on('close', () => {
      if (res.statusCode < 400) finished++;
    });
    setHeaders(res, rateLimitHeaders(limits, HEADERS));
    next();
  }, ok);
  app.get('/by-hand', (req, res, next) => {
    const go = (session) => {
      res.on('close', () => void session.settle({ record: res.statusCode < 400 }));
      setHeaders(res, rateLimitHeaders(session.decision.limits, HEADERS));
      next();
    };
    const session = startMetering(tollgate, { customerId: customerId(req), eventType: 'http.request' });
    if (session instanceof Promise) session.then(go, next);
    else go(session);
  }, ok);
  app.get('/tollgate', meter(tollgate, { customerId, standardHeaders: 'draft-6' }), ok);
  listen(app);
} else {
  const results = await compareRoutes({
    title: "Where @tollgate/express's share of bare Express goes",
    script: new URL(import.meta.url).pathname,
    routes: STEPS,
  });
  const lines = STEPS.slice(1).map((step, i) => {
    const before = results[STEPS[i].name].vsBare.median;
    const after = results[step.name].vsBare.median;
    const change = (after - before) * 100;
    return `- ${step.name}: ${pct(after)} of bare, ${change >= 0 ? '+' : '−'}${Math.abs(change).toFixed(1)} points on the step before`;
  });
  console.log(`\nStep by step (medians):\n${lines.join('\n')}`);
}
