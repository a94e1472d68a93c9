/**
 * What every HTTP adapter shares: the per-request metering session (decide before, settle once
 * after), the IETF RateLimit headers, `Retry-After`, and the JSON bodies of the answers a metered
 * route gives when it does not run. `@tollgate/express` and `@tollgate/nestjs` are thin mappings
 * of their hosts' idioms onto these functions, so both answer the same way.
 */
import { EventEmitter } from 'node:events';
import { IncomingMessage } from 'node:http';
import { dimensionsSchema, parse, valuesSchema, type CheckInput, type CommitInput, type RecordEventInput, type ReserveInput } from './schemas.js';
import type { FieldIssue, TollgateError } from './errors.js';
import { immediateOf, promised } from './immediate.js';
import type { Tollgate, Reservation } from './tollgate.js';
import type { DecisionReason, Dimensions, LimitStatus, Values } from './types.js';

/** Versions of the IETF RateLimit header fields draft (draft-ietf-httpapi-ratelimit-headers). */
export type RateLimitHeadersDraft = 'draft-6' | 'draft-7' | 'draft-8';

/** The answer a metered request got before its handler ran. */
export interface Decision {
  allowed: boolean;
  /** `'limits'`, or which store-failure policy decided (`store_error_open` / `store_error_closed`). */
  reason: DecisionReason;
  /** Every applicable limit's status at decision time; a reservation's include its own hold. */
  limits: LimitStatus[];
  /** Seconds until every blocking window has reset when denied; null when allowed or one never resets. */
  retryAfter: number | null;
}

/** What a store failure does to a metered request: run it unmetered (`open`) or refuse it (`closed`). */
export type StoreErrorPolicy = 'open' | 'closed';

/** The JSON body of every error answer a metered route gives. */
export interface ErrorBody {
  error: { code: string; message: string; limits?: LimitStatus[]; issues?: FieldIssue[] };
}

export interface HeaderOptions {
  /** Which IETF draft to follow, or false for none. */
  standardHeaders: RateLimitHeadersDraft | false;
  /** `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix seconds). */
  legacyHeaders: boolean;
  /** Unix milliseconds the reset deltas are counted from. Default `Date.now()`. */
  now?: number;
}

export const STANDARD_HEADER_DRAFTS: readonly RateLimitHeadersDraft[] = ['draft-6', 'draft-7', 'draft-8'];

// ── choosing what to advertise ───────────────────────────────────────────────

function moreConstrained(a: LimitStatus, b: LimitStatus): number {
  return Number(a.allowed) - Number(b.allowed)
    || a.remaining / a.limit - b.remaining / b.limit
    || a.remaining - b.remaining
    || (a.reset ?? Infinity) - (b.reset ?? Infinity);
}

/**
 * The hard limits a client should hear about, most constrained first: those denying this
 * request, then the lowest remaining share of the limit, then the fewest remaining, then the
 * sooner reset. Soft limits never deny, so they are left out.
 */
export function rankLimits(limits: readonly LimitStatus[]): LimitStatus[] {
  return limits.filter((l) => l.mode !== 'soft').sort(moreConstrained);
}

/** The single limit draft-6/7 and legacy headers advertise: the first of {@link rankLimits}. */
export function mostConstrained(limits: readonly LimitStatus[]): LimitStatus | undefined {
  let best: LimitStatus | undefined;
  for (const l of limits) if (l.mode !== 'soft' && (best === undefined || moreConstrained(l, best) < 0)) best = l;
  return best;
}

/**
 * Seconds until every blocking (denying) window has reset, at least 1; null when nothing blocks
 * or a blocking limit never resets (`all_time`). The same rule as `Reservation.retryAfter`, for
 * decisions that come from `limits.check`.
 */
export function retryAfterSeconds(limits: readonly LimitStatus[], now = Date.now()): number | null {
  let latest: number | null = null;
  for (const l of limits) {
    if (l.allowed) continue;
    if (l.reset === null) return null;
    if (latest === null || l.reset > latest) latest = l.reset;
  }
  return latest === null ? null : Math.max(1, latest - Math.floor(now / 1000));
}

// ── headers ──────────────────────────────────────────────────────────────────

// The last window the headers were worked out for: the requests of one window repeat it, and
// parsing its ISO times showed in a metered route's profile.
let lastStart = '';
let lastEnd = '';
let lastEndMs = Number.NaN;
let lastSeconds = Number.NaN;

function readWindow(start: string, end: string): void {
  if (end === lastEnd && start === lastStart) return;
  lastEndMs = Date.parse(end);
  lastSeconds = Math.round((lastEndMs - Date.parse(start)) / 1000);
  lastStart = start;
  lastEnd = end;
}

function secondsUntilReset(l: LimitStatus, now: number): number | null {
  if (l.windowEnd === null) return null;
  readWindow(l.windowStart, l.windowEnd);
  return Math.max(0, Math.ceil((lastEndMs - now) / 1000));
}

function windowSeconds(l: LimitStatus): number | null {
  if (l.windowEnd === null) return null;
  readWindow(l.windowStart, l.windowEnd);
  return lastSeconds;
}

/**
 * Quota units as the drafts define them: a non-negative integer. A limit on a fractional meter
 * (dollars) is advertised in whole units, rounded down, so a client never hears of more than is
 * left; the JSON body keeps the exact figures.
 */
function units(n: number): string {
  return String(Math.max(0, Math.floor(n)));
}

// The last draft-6/7 policy: the requests of a route repeat it. Kept, it is one flat string that
// Node's header check reads as it is, where a new one is joined anew (and flattened) on every response.
let lastPolicyLimit = Number.NaN;
let lastPolicyWindow: number | null = null;
let lastPolicy = '';

/** `100;w=3600`, or the quota alone for a window that never ends. */
function policyText(limit: number, w: number | null): string {
  if (limit !== lastPolicyLimit || w !== lastPolicyWindow) {
    lastPolicy = w === null ? units(limit) : `${units(limit)};w=${w}`;
    lastPolicyLimit = limit;
    lastPolicyWindow = w;
  }
  return lastPolicy;
}

/** A structured-field string (RFC 8941 §3.3.3): printable ASCII with `"` and `\` escaped. */
function sfString(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&')}"`;
}

// Per limit id, its name as a structured-field string and its last draft-8 policy item: every
// response of a route repeats them.
interface Quota {
  name: string;
  limit: number;
  window: number | null;
  policy: string;
}
const quotas = new Map<string, Quota>();

function quotaOf(l: LimitStatus): Quota {
  let quota = quotas.get(l.limitId);
  if (quota === undefined) {
    // Limit ids come from the configured limits; the cap only guards against a host that makes up its own.
    if (quotas.size >= 1000) quotas.clear();
    quotas.set(l.limitId, (quota = { name: sfString(l.limitId), limit: Number.NaN, window: null, policy: '' }));
  }
  const w = windowSeconds(l);
  if (quota.limit !== l.limit || quota.window !== w) {
    quota.limit = l.limit;
    quota.window = w;
    quota.policy = `${quota.name};q=${units(l.limit)}${w === null ? '' : `;w=${w}`}`;
  }
  return quota;
}

/**
 * The rate-limit headers for a decision's limits, as a plain name → value map for any host.
 * draft-6: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (delta seconds) and
 * `RateLimit-Policy: 100;w=3600`. draft-7: `RateLimit: limit=100, remaining=7, reset=42` and the
 * same policy. draft-8: `RateLimit-Policy: "daily-tokens";q=100000;w=86400, ...` and
 * `RateLimit: "daily-tokens";r=512;t=4242, ...` naming every hard limit by its id, most
 * constrained first. draft-6/7 and legacy headers advertise the most constrained limit only.
 * Reset and window are left out for `all_time` limits, which never reset. Limit and remaining
 * are whole units, rounded down (a limit of 1.5 dollars with 0.3 left reads 1 and 0). No
 * applicable hard limit: no headers.
 *
 * @example
 * for (const [name, value] of Object.entries(rateLimitHeaders(decision.limits, { standardHeaders: 'draft-7', legacyHeaders: false })))
 *   res.setHeader(name, value);
 */
export function rateLimitHeaders(limits: readonly LimitStatus[], options: HeaderOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const { standardHeaders, legacyHeaders } = options;
  if (!standardHeaders && !legacyHeaders) return headers;
  const now = options.now ?? Date.now();
  if (standardHeaders === 'draft-8') {
    const ranked = rankLimits(limits);
    if (ranked.length === 0) return headers;
    let policy = '';
    let current = '';
    for (let i = 0; i < ranked.length; i++) {
      const l = ranked[i];
      const quota = quotaOf(l);
      const t = secondsUntilReset(l, now);
      const item = `${quota.name};r=${units(l.remaining)}${t === null ? '' : `;t=${t}`}`;
      policy = i === 0 ? quota.policy : `${policy}, ${quota.policy}`;
      current = i === 0 ? item : `${current}, ${item}`;
    }
    headers['RateLimit-Policy'] = policy;
    headers.RateLimit = current;
  }
  const top = mostConstrained(limits);
  if (!top) return headers;
  const reset = secondsUntilReset(top, now);
  const w = windowSeconds(top);
  if (standardHeaders === 'draft-6') {
    headers['RateLimit-Policy'] = policyText(top.limit, w);
    headers['RateLimit-Limit'] = units(top.limit);
    headers['RateLimit-Remaining'] = units(top.remaining);
    if (reset !== null) headers['RateLimit-Reset'] = String(reset);
  } else if (standardHeaders === 'draft-7') {
    headers['RateLimit-Policy'] = policyText(top.limit, w);
    headers.RateLimit = `limit=${units(top.limit)}, remaining=${units(top.remaining)}${reset === null ? '' : `, reset=${reset}`}`;
  }
  if (legacyHeaders) {
    headers['X-RateLimit-Limit'] = units(top.limit);
    headers['X-RateLimit-Remaining'] = units(top.remaining);
    if (top.reset !== null) headers['X-RateLimit-Reset'] = String(top.reset);
  }
  return headers;
}

// ── answers ──────────────────────────────────────────────────────────────────

/** `{ error: { code, message } }`, the shape of every error a metered route answers with. */
export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** The message of a 429: which limit blocked, and when to come back. */
export function limitExceededMessage(decision: Decision): string {
  const blocking = decision.limits.filter((l) => !l.allowed);
  const names = blocking.length ? blocking.map((l) => `"${l.limitName}" (${l.used} of ${l.limit} per ${l.period})`).join(', ') : 'a usage limit';
  const when = decision.retryAfter === null ? 'It does not reset on its own; raise the limit or contact support.' : `Retry in ${decision.retryAfter} s.`;
  return `Limit exceeded: ${names}. ${when}`;
}

/** The body of a 429: `{ error: { code: 'limit_exceeded', message, limits } }` with every limit's status. */
export function limitExceededBody(decision: Decision): ErrorBody {
  return { error: { code: 'limit_exceeded', message: limitExceededMessage(decision), limits: decision.limits } };
}

/**
 * Everything a denied request answers: status 429, the rate-limit headers, `Retry-After` when
 * the blocking windows reset, and the JSON body.
 */
export function limitExceededResponse(decision: Decision, options: HeaderOptions): { status: 429; headers: Record<string, string>; body: ErrorBody } {
  const headers = rateLimitHeaders(decision.limits, options);
  if (decision.retryAfter !== null) headers['Retry-After'] = String(decision.retryAfter);
  return { status: 429, headers, body: limitExceededBody(decision) };
}

/** The answer when the route cannot tell which customer is calling: 401. */
export function customerRequiredResponse(): { status: 401; body: ErrorBody } {
  return {
    status: 401,
    body: errorBody('customer_required', 'This route is metered per customer and the request did not say which customer it is for. Authenticate and try again.'),
  };
}

/**
 * The answer when what a route's callbacks gave for one request (customer id, dimensions,
 * estimate) is not valid, `error` being the `invalid_request` Tollgate threw: 400, one issue per
 * field. A route's options are checked when it is built, so such a value came from the request.
 */
export function invalidRequestResponse(error: TollgateError): { status: 400; body: ErrorBody } {
  const issues = error.issues ?? [];
  const message = issues.length ? `This request cannot be metered: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}.` : error.message;
  return { status: 400, body: { error: { code: 'invalid_request', message, issues } } };
}

/** The answer when the store failed and the route's policy is `closed`: 503. */
export function storeUnavailableResponse(): { status: 503; body: ErrorBody } {
  return {
    status: 503,
    body: errorBody('store_unavailable', 'Usage limits cannot be checked right now, so this metered route is refusing requests. Try again shortly.'),
  };
}

// ── the per-request session ──────────────────────────────────────────────────

/** What a metered request's handler can do, exposed as `req.tollgate` by the adapters. */
export interface RequestMetering {
  /** The answer the request got before its handler ran. */
  readonly decision: Decision;
  /**
   * Reports usage learned while handling the request (tokens from a model call). Amounts add
   * up across calls and with the adapter's `values` option, key by key.
   * @example req.tollgate.add({ tokens: result.usage.totalTokens })
   */
  add(values: Values): void;
  /**
   * Adds or overrides dimensions of the recorded event.
   * @example req.tollgate.setDimensions({ model: 'gpt-4o' })
   */
  setDimensions(dimensions: Dimensions): void;
  /** Records nothing for this request and releases its hold. */
  skip(): void;
}

export interface MeteringInput {
  customerId: string;
  eventType: string;
  dimensions?: Dimensions;
  /** Given: reserve it (atomic). Absent: check only, then record after. */
  estimate?: Values;
  /** Default `'open'`. Applies to thrown store errors and overrides the engine's own policy answer. */
  onStoreError?: StoreErrorPolicy;
}

/** A {@link RequestMetering} plus the adapter's side: settle it exactly once. */
export interface MeteringSession extends RequestMetering {
  readonly settled: boolean;
  /**
   * Ends the request's metering; only the first call does anything. With `record`, commits the
   * reservation (or records the event) with the reported values, the estimate standing in for
   * keys nobody reported; without, releases the hold. Never rejects: a store failure at this
   * point cannot change the answer any more, so it is emitted as a process warning
   * (`TOLLGATE_RECORD_FAILED`).
   */
  settle(outcome: { record: boolean; values?: Values }): Promise<void>;
}

function warnRecordFailed(error: unknown): void {
  const message = `Tollgate could not settle a metered request: ${(error as Error)?.message ?? error}`;
  process.emitWarning(message, { code: 'TOLLGATE_RECORD_FAILED', detail: 'The response was already decided; the usage of this request may be missing.' });
}

function addValues(into: Values, values: Values): void {
  for (const k in values) into[k] = (into[k] ?? 0) + values[k];
}

class Session implements MeteringSession {
  settled = false;
  private reported: Values | null = null;
  private warnedLate = false;
  private extraDimensions: Dimensions | null = null;
  private skipped = false;

  constructor(
    private readonly tollgate: Tollgate,
    private readonly input: MeteringInput,
    readonly decision: Decision,
    private readonly reservation: Reservation | null,
  ) {}

  add(values: Values): void {
    const valid = parse(valuesSchema, values, 'req.tollgate.add(values)');
    if (this.late('add')) return;
    if (this.reported === null) this.reported = {};
    addValues(this.reported, valid);
  }

  setDimensions(dimensions: Dimensions): void {
    const valid = parse(dimensionsSchema, dimensions, 'req.tollgate.setDimensions(dimensions)');
    if (this.late('setDimensions')) return;
    this.extraDimensions = { ...this.extraDimensions, ...valid };
  }

  skip(): void {
    if (this.late('skip')) return;
    this.skipped = true;
  }

  /**
   * True once the request is settled: what is reported then can no longer count. The first such
   * call says so in a process warning (`TOLLGATE_LATE_USAGE`) instead of being dropped silently.
   */
  private late(call: string): boolean {
    if (!this.settled) return false;
    if (!this.warnedLate) {
      this.warnedLate = true;
      process.emitWarning(`Tollgate: ${call}() was called on a metered request that was already recorded or released, so it does not count. Report usage before the response ends.`, {
        code: 'TOLLGATE_LATE_USAGE',
      });
    }
    return true;
  }

  settle(outcome: { record: boolean; values?: Values }): Promise<void> {
    if (this.settled) return SETTLED;
    this.settled = true;
    if (!this.decision.allowed) return SETTLED;
    let pending: Promise<unknown> | undefined;
    try {
      pending = this.finish(outcome);
    } catch (error) {
      warnRecordFailed(error);
      return SETTLED;
    }
    return pending === undefined ? SETTLED : pending.then(() => {}, warnRecordFailed);
  }

  /** Records, commits or releases; a promise only when the store has to be waited for. */
  private finish(outcome: { record: boolean; values?: Values }): Promise<unknown> | undefined {
    const reservation = this.reservation;
    if (!outcome.record || this.skipped) return reservation?.release();
    let values: Values | undefined;
    if (this.reported !== null || outcome.values !== undefined) {
      const reported: Values = {};
      if (outcome.values) addValues(reported, outcome.values);
      if (this.reported) addValues(reported, this.reported);
      values = { ...this.input.estimate, ...reported };
    }
    if (reservation?.allowed) {
      const commit: CommitInput = {};
      if (values !== undefined) commit.values = values;
      if (this.extraDimensions !== null) commit.dimensions = this.extraDimensions;
      return reservation.commit(commit);
    }
    // A plain check, or a store failure that the route let through without a hold.
    const event: RecordEventInput = { customerId: this.input.customerId, eventType: this.input.eventType };
    const recordedValues = values ?? this.input.estimate;
    if (recordedValues !== undefined) event.values = recordedValues;
    const dimensions = this.extraDimensions === null ? this.input.dimensions : { ...this.input.dimensions, ...this.extraDimensions };
    if (dimensions !== undefined) event.dimensions = dimensions;
    const recorded = immediateOf(this.tollgate).record(event);
    return recorded instanceof Promise ? recorded : undefined;
  }
}

// ── the session on the request ───────────────────────────────────────────────

// `req.tollgate` is an accessor on Express's request prototype. Express changes the prototype of
// every request it handles, so adding a property to each request (`req.tollgate = session`)
// missed V8's inline caches on every request: some 20k instructions a request. Keeping the
// session in a WeakMap by request instead cost about 7k (the GC treats every entry as an
// ephemeron). The response's 'close' listener, which every metered request adds anyway to settle
// once, carries the session instead, and the accessor finds it through `req.res` (set by Express
// on every request). Assigning `req.tollgate` still works; it makes an own property, as before.

/** Where a 'close' listener carries the session of its request. */
const SESSION = Symbol('tollgate.session');
type SessionListener = (() => void) & { [SESSION]?: MeteringSession };

/** The response side of {@link attachSession}: Node's ServerResponse, or anything with its 'close' event. */
export interface ClosingResponse {
  on(event: 'close', listener: () => void): unknown;
  listeners(event: 'close'): Function[];
}

/** Per request prototype, the prototype that carries the accessor (null: none can). */
const holders = new WeakMap<object, object | null>();

/**
 * Calls `onClose` once `response` closes ('close' comes after 'finish' on every response, and
 * alone when the client left first) and makes `session` the request's `tollgate`, also after the
 * response closed. On a request whose prototype chain reaches Node's IncomingMessage through Express's request
 * object, `tollgate` is a getter on Express's object, shared by every app and sub-app the request
 * passes through, that reads the session from `req.res`'s 'close' listeners (the last one attached
 * wins); on any other request (a plain IncomingMessage, Fastify's request) it is an own property.
 *
 * @example
 * attachSession(req, res, session, () => void session.settle({ record: res.statusCode < 400 }));
 */
export function attachSession(request: object, response: ClosingResponse, session: MeteringSession, onClose: () => void): void {
  const proto = Object.getPrototypeOf(request) as object | null;
  let holder = proto === null ? null : holders.get(proto);
  if (holder === undefined) holders.set(proto!, (holder = accessorHolder(proto!)));
  if (holder === null) (request as { tollgate?: MeteringSession }).tollgate = session;
  // The listener carries the session; a function that carries another request's already (one
  // shared by requests) is wrapped, so each request's listener carries its own.
  let listener = onClose as SessionListener;
  if (listener[SESSION] !== undefined) listener = () => onClose();
  listener[SESSION] = session;
  // Node's EventEmitter `on`, called directly: on a response whose hidden class Express made new
  // (it changes the prototype of every response), looking `on` up walks six prototypes past V8's
  // caches, some 7k instructions a request. Every emitter inherits this `on`; an override on the
  // way (compression's, for 'drain') is passed by, which for 'close' changes nothing.
  if (response instanceof EventEmitter) EventEmitter.prototype.on.call(response, 'close', listener);
  else response.on('close', listener);
}

/**
 * The prototype to carry the accessor: the last one before Node's IncomingMessage. Null when
 * there is none (a plain IncomingMessage), or it is IncomingMessage itself, or it has a
 * `tollgate` of its own already.
 */
function accessorHolder(proto: object): object | null {
  let holder: object | null = proto;
  while (holder !== null && Object.getPrototypeOf(holder) !== IncomingMessage.prototype) holder = Object.getPrototypeOf(holder) as object | null;
  if (holder === null) return null;
  const own = Object.getOwnPropertyDescriptor(holder, 'tollgate');
  if (own !== undefined) return own.get === readSession ? holder : null;
  Object.defineProperty(holder, 'tollgate', { configurable: true, get: readSession, set: writeSession });
  return holder;
}

/** The session the last metering of this request attached to its response, if any. */
function readSession(this: { res?: Partial<ClosingResponse> | null }): MeteringSession | undefined {
  const response = this.res;
  if (response == null || typeof response.listeners !== 'function') return undefined;
  const listeners = response.listeners('close') as SessionListener[];
  for (let i = listeners.length - 1; i >= 0; i--) {
    const session = listeners[i][SESSION];
    if (session !== undefined) return session;
  }
  return undefined;
}

function writeSession(this: object, value: unknown): void {
  Object.defineProperty(this, 'tollgate', { value, writable: true, enumerable: true, configurable: true });
}

/** What a settled session answers: nothing to wait for. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * Decides a request before its handler runs: `reserve` when an estimate is given (atomic: N
 * concurrent requests for the last units get exactly as many allowances as fit), else
 * `limits.check`. Store failures follow `onStoreError` and show in `decision.reason`. Other
 * errors, such as `invalid_request` from bad dimensions, are thrown.
 *
 * @example
 * const metering = await meterRequest(tollgate, { customerId, eventType: 'llm.completion', estimate: { tokens: 2000 } });
 * if (!metering.decision.allowed) return reply(limitExceededResponse(metering.decision, headerOptions));
 * // ... run the handler, then, once:
 * await metering.settle({ record: status < 400 });
 */
export function meterRequest(tollgate: Tollgate, input: MeteringInput): Promise<MeteringSession> {
  return promised(() => startMetering(tollgate, input));
}

/**
 * {@link meterRequest} for adapters that can go on at once: the session itself when the decision
 * needed no waiting (a check on the memory store), else a promise of it.
 */
export function startMetering(tollgate: Tollgate, input: MeteringInput): MeteringSession | Promise<MeteringSession> {
  if (input.estimate !== undefined) return reserveFor(tollgate, input);
  const check: CheckInput = { customerId: input.customerId, eventType: input.eventType };
  if (input.dimensions !== undefined) check.dimensions = input.dimensions;
  const decision = immediateOf(tollgate).check(check);
  if (decision instanceof Promise) return decision.then((d) => sessionOf(tollgate, input, d, null));
  return sessionOf(tollgate, input, decision, null);
}

async function reserveFor(tollgate: Tollgate, input: MeteringInput): Promise<MeteringSession> {
  const reserve: ReserveInput = { customerId: input.customerId, eventType: input.eventType, estimate: input.estimate! };
  if (input.dimensions !== undefined) reserve.dimensions = input.dimensions;
  const reservation = await tollgate.reserve(reserve);
  const decision = { allowed: reservation.allowed, reason: reservation.reason, limits: reservation.limits, retryAfter: reservation.retryAfter };
  const session = sessionOf(tollgate, input, decision, reservation);
  // Overruled by the route's policy: the hold goes.
  if (decision.allowed && !session.decision.allowed) await reservation.release().catch(() => {});
  return session;
}

/**
 * The session for a decision. The engine answers a failed store by its own onStoreError policy;
 * the route's, when set, outranks it.
 */
function sessionOf(tollgate: Tollgate, input: MeteringInput, decision: Decision, reservation: Reservation | null): Session {
  if (decision.reason !== 'limits' && input.onStoreError !== undefined) {
    const allowed = input.onStoreError === 'open';
    decision = { ...decision, allowed, reason: allowed ? 'store_error_open' : 'store_error_closed' };
  }
  return new Session(tollgate, input, decision, reservation);
}
