import {
  STANDARD_HEADER_DRAFTS,
  TollgateError,
  dimensionsSchema,
  eventTypeSchema,
  valuesSchema,
  type Decision,
  type Dimensions,
  type FieldIssue,
  type RateLimitHeadersDraft,
  type Tollgate,
  type Values,
} from '@tollgate/core';
import type { NextFunction, Request, Response } from 'express';

type MaybePromise<T> = T | Promise<T>;

/** Options of {@link meter}. Only `customerId` is required. */
export interface MeterOptions {
  /**
   * Which customer the request is for: their limits apply and their usage is recorded. Called
   * once per request before the handler. Returning `undefined`, `null` or `''` answers 401 (see
   * `onMissingCustomer`). Required.
   * @example customerId: (req) => req.header('x-customer-id')
   * @example customerId: (req) => req.user?.orgId   // set by your auth middleware
   */
  customerId: (req: Request) => MaybePromise<string | undefined | null>;
  /**
   * The event type recorded, and the event type whose meters' limits apply. Default `'http.request'`.
   * @example eventType: 'llm.completion'
   */
  eventType?: string;
  /**
   * Dimensions of the event, decided before the handler: they select limits with
   * `dimensionFilters` and are recorded. Add more later with `req.tollgate.setDimensions()`.
   * Default: none.
   * @example dimensions: (req) => ({ route: req.route?.path ?? req.path, plan: req.user.plan })
   */
  dimensions?: Dimensions | ((req: Request) => MaybePromise<Dimensions | undefined>);
  /**
   * What the request is expected to use. Given: the estimate is reserved atomically before the
   * handler runs, so N concurrent requests for the last units get exactly as many 2xx as fit,
   * and the reservation is committed after. Absent (or returning `undefined`): the limits are
   * only checked before and the usage recorded after, which is cheaper but lets concurrent
   * requests overshoot a nearly used-up limit. A count meter counts the request whatever the
   * values, so `estimate: {}` is enough for an exact request-count limit. Default: none.
   * @example estimate: (req) => ({ tokens: req.body.max_tokens ?? 1000 })
   * @example estimate: {}
   */
  estimate?: Values | ((req: Request) => MaybePromise<Values | undefined>);
  /**
   * The event's values, read when the response finishes (or the client leaves). Amounts add up
   * with `req.tollgate.add()`, key by key; keys nobody reported keep the estimate's value.
   * Default: the estimate, or no values.
   * @example values: (req, res) => ({ tokens: res.locals.usage.totalTokens, bytes: Number(res.getHeader('content-length') ?? 0) })
   */
  values?: (req: Request, res: Response) => MaybePromise<Values | undefined>;
  /**
   * Whether a finished request is recorded (may return a promise). A request not recorded
   * releases its hold. Default: `res.statusCode < 400` (a throwing handler's 500 is not recorded).
   * @example recordWhen: (req, res) => res.statusCode < 500   // also charge 4xx answers
   */
  recordWhen?: (req: Request, res: Response) => MaybePromise<boolean>;
  /**
   * Which IETF RateLimit header fields to send on every metered response, for the most
   * constrained hard limit (draft-8: every hard limit by name), or `false` for none.
   * Default `'draft-6'` (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, `RateLimit-Policy`).
   * @example standardHeaders: 'draft-8'
   */
  standardHeaders?: RateLimitHeadersDraft | false;
  /**
   * Also send `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds).
   * Default `false`.
   * @example legacyHeaders: true
   */
  legacyHeaders?: boolean;
  /**
   * Answers a request a limit denies. The rate-limit headers and `Retry-After` are already set.
   * Nothing is recorded and the route's handler is not called unless you call `next()`.
   * Default: 429 with `{ error: { code: 'limit_exceeded', message, limits } }`.
   * @example onLimitExceeded: (req, res, next, decision) => res.status(402).json({ upgrade: 'https://example.com/pricing', limits: decision.limits })
   */
  onLimitExceeded?: (req: Request, res: Response, next: NextFunction, decision: Decision) => void;
  /**
   * Answers a request `customerId` found no customer for.
   * Default: 401 with `{ error: { code: 'customer_required', message } }`.
   * @example onMissingCustomer: (req, res) => res.status(403).json({ error: 'API key required' })
   */
  onMissingCustomer?: (req: Request, res: Response, next: NextFunction) => void;
  /**
   * When the store fails or times out while deciding: `'open'` runs the handler unmetered
   * (the usage is still recorded if the store is back by then), `'closed'` answers 503 with
   * `{ error: { code: 'store_unavailable', message } }`. Default: the Tollgate instance's own
   * `onStoreError` policy for counters failures (itself `'open'` by default), and `'open'`
   * for any other store failure.
   * @example onStoreError: 'closed'   // an expensive LLM route: no unmetered calls
   */
  onStoreError?: 'open' | 'closed';
}

const KNOWN = new Set<string>([
  'customerId', 'eventType', 'dimensions', 'estimate', 'values', 'recordWhen', 'standardHeaders',
  'legacyHeaders', 'onLimitExceeded', 'onMissingCustomer', 'onStoreError',
]);
const FUNCTIONS = ['customerId', 'values', 'recordWhen', 'onLimitExceeded', 'onMissingCustomer'] as const;

/** Throws `invalid_request` naming every wrong option, so a misconfigured route fails at start-up. */
export function validateOptions(tollgate: Tollgate, options: MeterOptions): void {
  const issues: FieldIssue[] = [];
  if (!tollgate || typeof tollgate.reserve !== 'function' || typeof tollgate.limits?.check !== 'function') {
    issues.push({ path: 'tollgate', message: 'pass the instance createTollgate() returned as the first argument' });
  }
  if (!options || typeof options !== 'object') {
    issues.push({ path: 'options', message: 'pass an options object with at least customerId' });
  } else {
    for (const key of Object.keys(options)) {
      if (!KNOWN.has(key)) issues.push({ path: key, message: `unknown option; known options are ${[...KNOWN].join(', ')}` });
    }
    if (options.customerId === undefined) issues.push({ path: 'customerId', message: 'required: a function (req) => the customer id' });
    for (const key of FUNCTIONS) {
      if (options[key] !== undefined && typeof options[key] !== 'function') issues.push({ path: key, message: 'must be a function' });
    }
    if (options.eventType !== undefined && !eventTypeSchema.safeParse(options.eventType).success) {
      issues.push({ path: 'eventType', message: 'must be a dotted name such as llm.completion' });
    }
    if (options.dimensions !== undefined && typeof options.dimensions !== 'function' && !dimensionsSchema.safeParse(options.dimensions).success) {
      issues.push({ path: 'dimensions', message: 'must be a function or an object of string values with keys matching [A-Za-z0-9_.-]{1,64}' });
    }
    if (options.estimate !== undefined && typeof options.estimate !== 'function' && !valuesSchema.safeParse(options.estimate).success) {
      issues.push({ path: 'estimate', message: 'must be a function or an object of finite numbers' });
    }
    if (options.standardHeaders !== undefined && options.standardHeaders !== false && !STANDARD_HEADER_DRAFTS.includes(options.standardHeaders)) {
      issues.push({ path: 'standardHeaders', message: `must be ${STANDARD_HEADER_DRAFTS.map((d) => `'${d}'`).join(', ')} or false` });
    }
    if (options.legacyHeaders !== undefined && typeof options.legacyHeaders !== 'boolean') {
      issues.push({ path: 'legacyHeaders', message: 'must be true or false' });
    }
    if (options.onStoreError !== undefined && options.onStoreError !== 'open' && options.onStoreError !== 'closed') {
      issues.push({ path: 'onStoreError', message: "must be 'open' or 'closed'" });
    }
  }
  if (issues.length) {
    const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    throw new TollgateError('invalid_request', `Invalid meter() options: ${list}.`, { issues });
  }
}
