// What the Express benchmarks (express.mjs, express-breakdown.mjs) share: the app with its bare
// route, the customer callback, the Tollgate they meter with and the floor middleware.
import { createTollgate } from '@tollgate/core';
import express from 'express';
import { CUSTOMER_HEADER } from './http-load.mjs';

/** Every route's handler: a small JSON answer. */
export const ok = (_req, res) => res.json({ ok: true });

/** An Express app with the bare route (`/bare`: the handler alone) and no X-Powered-By header. */
export function benchApp() {
  const app = express();
  app.disable('x-powered-by');
  app.get('/bare', ok);
  return app;
}

export const customerId = (req) => req.header(CUSTOMER_HEADER);

/** A Tollgate on the memory store with one request-count limit per minute that never denies. */
export async function benchTollgate() {
  const tollgate = createTollgate({
    meters: [{ id: 'requests', name: 'Requests', aggregation: 'count', field: '*' }],
    limits: [{ id: 'requests-per-minute', name: 'Requests per minute', meterId: 'requests', limitValue: 1e9, period: 'minute' }],
  });
  await tollgate.ready();
  return tollgate;
}

export const FLOOR = 'floor (customer header + 4 fixed headers)';

/**
 * The floor: reads the customer header and sets the four draft-6 headers with fixed values, the
 * least any per-customer limiter that sends them adds on Express.
 */
export function floor(req, res, next) {
  customerId(req);
  res.setHeader('RateLimit-Policy', '1000000000;w=60');
  res.setHeader('RateLimit-Limit', '1000000000');
  res.setHeader('RateLimit-Remaining', '999999999');
  res.setHeader('RateLimit-Reset', '60');
  next();
}
