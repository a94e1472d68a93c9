import {
  TollgateError,
  attachSession,
  customerRequiredResponse,
  invalidRequestResponse,
  limitExceededBody,
  rateLimitHeaders,
  startMetering,
  storeUnavailableResponse,
  type Decision,
  type Dimensions,
  type HeaderOptions,
  type MeteringSession,
  type Tollgate,
  type Values,
} from '@tollgate/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { validateOptions, type MeterOptions } from './options.js';

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === 'function';
}

function setHeaders(res: Response, headers: Record<string, string>): void {
  for (const name in headers) res.setHeader(name, headers[name]);
}

const defaultRecordWhen = (_req: Request, res: Response) => res.statusCode < 400;

function defaultOnLimitExceeded(_req: Request, res: Response, _next: NextFunction, decision: Decision): void {
  res.status(429).json(limitExceededBody(decision));
}

function defaultOnMissingCustomer(_req: Request, res: Response): void {
  const { status, body } = customerRequiredResponse();
  res.status(status).json(body);
}

/**
 * A value the route's callbacks produced for this request (customerId, dimensions, estimate) that
 * Tollgate rejects answers 400 with the fields named; any other error goes to Express.
 */
function decisionFailed(error: unknown, res: Response, next: NextFunction): void {
  if (!TollgateError.isInstance(error) || error.code !== 'invalid_request' || res.headersSent) return next(error);
  const { status, body } = invalidRequestResponse(error);
  res.status(status).json(body);
}

/**
 * Meters a route or router: decides before the handler (reserving `estimate` when given,
 * else checking), answers 429 when a limit denies, and records the request exactly once when
 * the response finishes, or when the client disconnects first.
 *
 * A client that disconnects before the response finished is recorded like a finished request:
 * `recordWhen` sees the status the response had by then (200 unless the handler set another),
 * and the values are what the handler reported up to then, the estimate standing in for the
 * rest, because the work (a model call) was usually started and paid for. Usage the handler
 * reports after the disconnect is not counted. A client gone before the decision was made
 * never reaches the handler: its hold is released.
 *
 * @example
 * app.post('/v1/chat', meter(tollgate, {
 *   customerId: (req) => req.header('x-customer-id'),
 *   eventType: 'llm.completion',
 *   estimate: (req) => ({ tokens: req.body.max_tokens ?? 1000 }),
 * }), async (req, res) => {
 *   const result = await generateText({ ... });
 *   req.tollgate!.add({ tokens: result.usage.totalTokens });
 *   res.json({ text: result.text });
 * });
 */
export function meter(tollgate: Tollgate, options: MeterOptions): RequestHandler {
  validateOptions(tollgate, options);
  const eventType = options.eventType ?? 'http.request';
  const { customerId, dimensions, estimate, values, onStoreError } = options;
  const recordWhen = options.recordWhen ?? defaultRecordWhen;
  const onLimitExceeded = options.onLimitExceeded ?? defaultOnLimitExceeded;
  const onMissingCustomer = options.onMissingCustomer ?? defaultOnMissingCustomer;
  const headerOptions: HeaderOptions = {
    standardHeaders: options.standardHeaders === undefined ? 'draft-6' : options.standardHeaders,
    legacyHeaders: options.legacyHeaders ?? false,
  };
  const sendsHeaders = headerOptions.standardHeaders !== false || headerOptions.legacyHeaders;

  // Synchronous as far as it can be: callbacks that return plain values and a store that answers
  // at once (the memory store) decide the request without a promise or a closure; each step waits
  // only for a callback that returned a promise.
  function decide(req: Request, res: Response, next: NextFunction): unknown {
    const customer = customerId(req);
    if (isThenable(customer)) return customer.then((c) => withCustomer(req, res, next, c));
    return withCustomer(req, res, next, customer);
  }

  function withCustomer(req: Request, res: Response, next: NextFunction, customer: string | undefined | null): unknown {
    if (customer === undefined || customer === null || customer === '') return onMissingCustomer(req, res, next);
    const dims = typeof dimensions === 'function' ? dimensions(req) : dimensions;
    if (isThenable(dims)) return dims.then((d) => withDimensions(req, res, next, customer, d));
    return withDimensions(req, res, next, customer, dims);
  }

  function withDimensions(req: Request, res: Response, next: NextFunction, customer: string, dims: Dimensions | undefined): unknown {
    const est = typeof estimate === 'function' ? estimate(req) : estimate;
    if (isThenable(est)) return est.then((e) => start(req, res, next, customer, dims, e));
    return start(req, res, next, customer, dims, est);
  }

  function start(req: Request, res: Response, next: NextFunction, customer: string, dims: Dimensions | undefined, est: Values | undefined): unknown {
    const session = startMetering(tollgate, { customerId: customer, eventType, dimensions: dims, estimate: est, onStoreError });
    if (session instanceof Promise) return session.then((s) => proceed(req, res, next, s));
    return proceed(req, res, next, session);
  }

  function proceed(req: Request, res: Response, next: NextFunction, session: MeteringSession): unknown {
    const { decision } = session;
    if (!decision.allowed) {
      if (decision.reason === 'store_error_closed') {
        const { status, body } = storeUnavailableResponse();
        res.status(status).json(body);
        return;
      }
      if (sendsHeaders) setHeaders(res, rateLimitHeaders(decision.limits, headerOptions));
      if (decision.retryAfter !== null) res.setHeader('Retry-After', String(decision.retryAfter));
      return onLimitExceeded(req, res, next, decision);
    }
    // A response that closed (the client left) while deciding: Node marks it destroyed then.
    if (res.destroyed) return session.settle({ record: false });
    // Settles once the response closes; the listener, a closure over the session (keeping the
    // session on the response instead adds a property to every response, about three times the
    // cost), also carries it to `req.tollgate`.
    attachSession(req, res, session, () => settle(req, res, session));
    if (sendsHeaders) setHeaders(res, rateLimitHeaders(decision.limits, headerOptions));
    next();
  }

  function settle(req: Request, res: Response, session: MeteringSession): void {
    let record;
    try {
      record = recordWhen(req, res);
    } catch (error) {
      failed(session, error);
      return;
    }
    if (isThenable(record)) record.then((r) => settleWith(req, res, session, r), (error: unknown) => failed(session, error));
    else settleWith(req, res, session, record);
  }

  function settleWith(req: Request, res: Response, session: MeteringSession, recordIt: boolean): void {
    const record = Boolean(recordIt);
    let reported;
    try {
      reported = record && values ? values(req, res) : undefined;
    } catch (error) {
      failed(session, error);
      return;
    }
    if (isThenable(reported)) reported.then((v) => session.settle({ record, values: v }), (error: unknown) => failed(session, error));
    else void session.settle({ record, values: reported });
  }

  // The answer is gone; a throwing callback must not leave the hold behind.
  function failed(session: MeteringSession, error: unknown): void {
    void session.settle({ record: false }).then(() => {
      process.emitWarning(`Tollgate meter(): recordWhen or values threw, so the request was not recorded: ${(error as Error)?.message ?? error}`, { code: 'TOLLGATE_RECORD_FAILED' });
    });
  }

  return function tollgateMeter(req, res, next) {
    let pending: unknown;
    try {
      pending = decide(req, res, next);
    } catch (error) {
      decisionFailed(error, res, next);
      return;
    }
    if (isThenable(pending)) pending.then(undefined, (error: unknown) => decisionFailed(error, res, next));
  };
}
