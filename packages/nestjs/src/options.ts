import type { ExecutionContext, ModuleMetadata } from '@nestjs/common';
import {
  STANDARD_HEADER_DRAFTS,
  TollgateError,
  dimensionsSchema,
  eventTypeSchema,
  valuesSchema,
  type Dimensions,
  type FieldIssue,
  type RateLimitHeadersDraft,
  type Tollgate,
  type TollgateOptions,
  type Values,
} from '@tollgate/core';

type MaybePromise<T> = T | Promise<T>;

/** Options of `TollgateModule.forRoot()`, or what `forRootAsync`'s factory returns. */
export interface TollgateModuleOptions {
  /**
   * The engine: an instance you created (you close it), or the options to create one (the
   * module closes it on shutdown). Default: `createTollgate()` with the memory store.
   * @example tollgate: createTollgate({ store: postgresStore({ pool }), meters, limits })
   * @example tollgate: { meters: [...], limits: [...] }
   */
  tollgate?: Tollgate | TollgateOptions;
  /**
   * Which customer a request is for. `undefined`, `null` or `''` answers 401, any other value
   * that is not a string 400 (`invalid_request`). Default: none,
   * so every metered request answers 401 unless a subclass of `TollgateGuard` overrides
   * `getCustomerId`.
   * @example customerId: (context) => context.switchToHttp().getRequest().headers['x-customer-id']
   * @example customerId: (context) => context.switchToHttp().getRequest().user?.orgId
   */
  customerId?: (context: ExecutionContext) => MaybePromise<string | undefined | null>;
  /**
   * The event type of routes whose `@Metered()` names none (and of every route under a global
   * guard without `@Metered()`). Default `'http.request'`.
   * @example eventType: 'api.call'
   */
  eventType?: string;
  /**
   * Which IETF RateLimit header fields metered responses carry, for the most constrained hard
   * limit (draft-8: every hard limit by name), or `false`. Default `'draft-6'`.
   * @example standardHeaders: 'draft-8'
   */
  standardHeaders?: RateLimitHeadersDraft | false;
  /**
   * Also send `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`. Default `false`.
   * @example legacyHeaders: true
   */
  legacyHeaders?: boolean;
  /**
   * When the store fails while deciding: `'open'` runs the route unmetered, `'closed'`
   * answers 503. Default: the engine's own `onStoreError` (itself `'open'` by default).
   * @example onStoreError: 'closed'
   */
  onStoreError?: 'open' | 'closed';
}

/** Options of `TollgateModule.forRootAsync()`. */
export interface TollgateModuleAsyncOptions {
  /**
   * Modules whose providers `useFactory` injects. Default: none.
   * @example imports: [ConfigModule]
   */
  imports?: ModuleMetadata['imports'];
  /**
   * Builds the options from injected providers.
   * @example useFactory: (config: ConfigService) => ({ tollgate: { limits: [...] }, customerId: ... })
   */
  useFactory: (...args: any[]) => MaybePromise<TollgateModuleOptions>;
  /**
   * Providers passed to `useFactory`, in order. Default: none.
   * @example inject: [ConfigService]
   */
  inject?: any[];
}

/** Options of `@Metered()`. All optional; on a controller they apply to every route, and a method's own override key by key. */
export interface MeteredOptions<TResult = any> {
  /**
   * The event type recorded, and whose meters' limits apply. Default: the module's `eventType`
   * (`'http.request'`).
   * @example eventType: 'llm.completion'
   */
  eventType?: string;
  /**
   * What the request is expected to use. Given, it is reserved atomically by the guard (exactly
   * as many concurrent requests get through as fit) and committed by the interceptor; `{}` is
   * enough for an exact request-count limit. Absent: check before, record after. Default: none.
   * @example estimate: (context) => ({ tokens: context.switchToHttp().getRequest().body.max_tokens ?? 1000 })
   */
  estimate?: Values | ((context: ExecutionContext) => MaybePromise<Values | undefined>);
  /**
   * The recorded values, from what the handler returned (for an Observable handler, its last
   * value). Amounts add up with `@Metering()`/`req.tollgate.add()` key by key; keys nobody
   * reported keep the estimate's value. Only called with a value the handler produced: a
   * stream left before its first value, or a handler a timeout tore down, records what was
   * added and the estimate. When it throws, a completed request is released unrecorded, one
   * the client left is recorded without it; both emit `TOLLGATE_RECORD_FAILED`. Default: the
   * estimate, or no values.
   * @example values: (result: ChatResult) => ({ tokens: result.usage.totalTokens })
   */
  values?: (result: TResult, context: ExecutionContext) => Values | undefined;
  /**
   * Dimensions of the event, decided before the handler. A value that is not a string (an
   * absent query parameter) answers 400 (`invalid_request`). Default: none.
   * @example dimensions: (context) => ({ model: context.switchToHttp().getRequest().body.model })
   */
  dimensions?: Dimensions | ((context: ExecutionContext) => MaybePromise<Dimensions | undefined>);
}

function fail(what: string, issues: FieldIssue[]): never {
  const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new TollgateError('invalid_request', `Invalid ${what}: ${list}.`, { issues });
}

const MODULE_KEYS = new Set(['tollgate', 'customerId', 'eventType', 'standardHeaders', 'legacyHeaders', 'onStoreError']);

export function isTollgateInstance(value: unknown): value is Tollgate {
  return typeof value === 'object' && value !== null && typeof (value as Tollgate).reserve === 'function' && typeof (value as Tollgate).limits?.check === 'function';
}

/** Throws `invalid_request` naming every wrong option, so a misconfigured app fails at start-up. */
export function validateModuleOptions(options: TollgateModuleOptions): TollgateModuleOptions {
  const issues: FieldIssue[] = [];
  if (!options || typeof options !== 'object') fail('TollgateModule options', [{ path: '(options)', message: 'pass an options object' }]);
  for (const key of Object.keys(options)) {
    if (!MODULE_KEYS.has(key)) issues.push({ path: key, message: `unknown option; known options are ${[...MODULE_KEYS].join(', ')}` });
  }
  if (options.tollgate !== undefined && (typeof options.tollgate !== 'object' || options.tollgate === null)) {
    issues.push({ path: 'tollgate', message: 'must be a Tollgate instance or createTollgate() options' });
  }
  if (options.customerId !== undefined && typeof options.customerId !== 'function') issues.push({ path: 'customerId', message: 'must be a function (context) => the customer id' });
  if (options.eventType !== undefined && !eventTypeSchema.safeParse(options.eventType).success) issues.push({ path: 'eventType', message: 'must be a dotted name such as llm.completion' });
  if (options.standardHeaders !== undefined && options.standardHeaders !== false && !STANDARD_HEADER_DRAFTS.includes(options.standardHeaders)) {
    issues.push({ path: 'standardHeaders', message: `must be ${STANDARD_HEADER_DRAFTS.map((d) => `'${d}'`).join(', ')} or false` });
  }
  if (options.legacyHeaders !== undefined && typeof options.legacyHeaders !== 'boolean') issues.push({ path: 'legacyHeaders', message: 'must be true or false' });
  if (options.onStoreError !== undefined && options.onStoreError !== 'open' && options.onStoreError !== 'closed') issues.push({ path: 'onStoreError', message: "must be 'open' or 'closed'" });
  if (issues.length) fail('TollgateModule options', issues);
  return options;
}

const METERED_KEYS = new Set(['eventType', 'estimate', 'values', 'dimensions']);

export function validateMeteredOptions(options: MeteredOptions): MeteredOptions {
  const issues: FieldIssue[] = [];
  if (typeof options !== 'object' || options === null) fail('@Metered() options', [{ path: '(options)', message: 'pass an options object or nothing' }]);
  for (const key of Object.keys(options)) {
    if (!METERED_KEYS.has(key)) issues.push({ path: key, message: `unknown option; known options are ${[...METERED_KEYS].join(', ')}` });
  }
  if (options.eventType !== undefined && !eventTypeSchema.safeParse(options.eventType).success) issues.push({ path: 'eventType', message: 'must be a dotted name such as llm.completion' });
  if (options.estimate !== undefined && typeof options.estimate !== 'function' && !valuesSchema.safeParse(options.estimate).success) issues.push({ path: 'estimate', message: 'must be a function or an object of finite numbers' });
  if (options.dimensions !== undefined && typeof options.dimensions !== 'function' && !dimensionsSchema.safeParse(options.dimensions).success) {
    issues.push({ path: 'dimensions', message: 'must be a function or an object of string values with keys matching [A-Za-z0-9_.-]{1,64}' });
  }
  if (options.values !== undefined && typeof options.values !== 'function') issues.push({ path: 'values', message: 'must be a function (result, context) => values' });
  if (issues.length) fail('@Metered() options', issues);
  return options;
}
