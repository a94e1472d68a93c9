import { z } from 'zod';
import { TollgateError, type FieldIssue } from './errors.js';
import type { Period } from './types.js';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const KEY_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_DIMENSIONS = 32;
export const MAX_VALUES = 64;
export const MAX_BATCH = 1000;

const key = z
  .string()
  .regex(KEY_PATTERN, 'keys must match [A-Za-z0-9_.-]{1,64}')
  .refine((k) => !FORBIDDEN_KEYS.has(k), 'keys __proto__, constructor and prototype are reserved');

/** Text every store can keep as given: no NUL (Postgres refuses it) and no lone UTF-16 surrogate (drivers rewrite it). */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const storable = (s: string) => !UNSTORABLE.test(s);
const STORABLE = 'must be well-formed Unicode without NUL characters';
/** The longest a reservation may hold its estimate: 7 days. */
const MAX_TTL_MS = 7 * 24 * 3600 * 1000;

export const idSchema = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters').refine(storable, STORABLE);

/**
 * A record whose keys are checked on the raw input: zod drops a `__proto__` key silently, and
 * such a key must be rejected, not ignored.
 */
function keyedRecord<V extends z.ZodType>(value: V, keys: z.ZodType<string> = key): z.ZodType<Record<string, z.output<V>>, Record<string, z.input<V>>> {
  return z.preprocess((input, ctx) => {
    if (input && typeof input === 'object' && !Array.isArray(input)) {
      for (const k of Object.keys(input)) {
        if (FORBIDDEN_KEYS.has(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'keys __proto__, constructor and prototype are reserved' });
      }
    }
    return input;
  }, z.record(keys, value)) as unknown as z.ZodType<Record<string, z.output<V>>, Record<string, z.input<V>>>;
}

export const dimensionsSchema = keyedRecord(z.string().max(256, 'dimension values must be at most 256 characters').refine(storable, STORABLE))
  .refine((d) => Object.keys(d).length <= MAX_DIMENSIONS, `at most ${MAX_DIMENSIONS} dimensions`);

export const valuesSchema = keyedRecord(z.number().refine(Number.isFinite, 'values must be finite numbers'))
  .refine((v) => Object.keys(v).length <= MAX_VALUES, `at most ${MAX_VALUES} values`);

export const eventTypeSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'event types are dotted names such as llm.completion');

const timezoneCache = new Map<string, boolean>();
export function isValidTimezone(tz: string): boolean {
  let ok = timezoneCache.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    timezoneCache.set(tz, ok);
  }
  return ok;
}

export const timezoneSchema = z.string().refine(isValidTimezone, 'must be an IANA timezone such as Europe/Berlin');

/** An ISO string or a Date, parsed to Unix milliseconds. */
export const dateSchema = z.union([z.string(), z.date()]).transform((value, ctx) => {
  const ms = typeof value === 'string' ? Date.parse(value) : value.getTime();
  if (!Number.isFinite(ms)) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO date string or a Date' });
    return z.NEVER;
  }
  return ms;
});

export const DURATION_PATTERN = /^([1-9]\d{0,8})(s|m|h|d)$/;
export const periodSchema = z.union([
  z.enum(['minute', 'hour', 'day', 'week', 'month', 'annual', 'all_time']),
  z.string().regex(DURATION_PATTERN, "periods are minute, hour, day, week, month, annual, all_time or a duration such as '30s', '5m', '2h', '7d'"),
]) as unknown as z.ZodType<Period, Period>;

export const aggregationSchema = z.enum(['sum', 'count', 'max', 'min', 'latest', 'avg', 'unique']);

export const eventFilterSchema = z
  .object({ eventType: eventTypeSchema.optional(), dimensions: dimensionsSchema.optional() })
  .strict();

const FIELD_PATTERN = /^(\*|values\.[A-Za-z0-9_.-]{1,64}|dimensions\.[A-Za-z0-9_.-]{1,64})$/;

const meterShape = {
  id: idSchema,
  name: z.string().min(1).max(256),
  aggregation: aggregationSchema,
  field: z.string().regex(FIELD_PATTERN, "field is '*' (count) or a path such as values.tokens or dimensions.user_id"),
  eventFilter: eventFilterSchema.optional(),
};

function checkMeterField(m: { aggregation?: string; field?: string }, ctx: z.RefinementCtx) {
  if (m.aggregation === undefined || m.field === undefined) return;
  if (m.aggregation === 'count') {
    // A count counts every matching event; a field would count differently live and on rebuild.
    if (m.field !== '*') ctx.addIssue({ code: 'custom', path: ['field'], message: "count meters count events: use field '*'" });
    return;
  }
  if (FORBIDDEN_KEYS.has(m.field.slice(m.field.indexOf('.') + 1))) {
    // No event can carry such a key (values and dimensions refuse it), so the meter would never count.
    ctx.addIssue({ code: 'custom', path: ['field'], message: 'keys __proto__, constructor and prototype are reserved' });
  } else if (m.field === '*') {
    ctx.addIssue({ code: 'custom', path: ['field'], message: `aggregation ${m.aggregation} needs a field such as values.tokens` });
  } else if (m.aggregation === 'unique' ? !m.field.startsWith('dimensions.') : !m.field.startsWith('values.')) {
    ctx.addIssue({
      code: 'custom',
      path: ['field'],
      message: m.aggregation === 'unique' ? 'unique counts a dimension: use dimensions.<key>' : `${m.aggregation} aggregates a number: use values.<key>`,
    });
  }
}

export const createMeterSchema = z.object(meterShape).strict().superRefine(checkMeterField);
export const updateMeterSchema = z
  .object({ name: meterShape.name, eventFilter: eventFilterSchema.nullable() })
  .partial()
  .strict();

const thresholdsSchema = z
  .array(z.number().int('thresholds are whole percentages').min(1).max(100))
  .max(20)
  .transform((t) => [...new Set(t)].sort((a, b) => a - b));

const limitShape = {
  id: idSchema,
  name: z.string().min(1).max(256),
  meterId: idSchema,
  limitValue: z.number().refine(Number.isFinite, 'must be a finite number').refine((n) => n > 0, 'limitValue must be greater than 0'),
  period: periodSchema,
  customerId: idSchema.optional(),
  dimensionFilters: dimensionsSchema.optional(),
  alertThresholds: thresholdsSchema.optional(),
  mode: z.enum(['hard', 'soft']).optional(),
};

export const createLimitSchema = z.object(limitShape).strict();
export const updateLimitSchema = z
  .object({
    name: limitShape.name,
    limitValue: limitShape.limitValue,
    period: limitShape.period,
    dimensionFilters: dimensionsSchema.nullable(),
    alertThresholds: thresholdsSchema.nullable(),
    mode: limitShape.mode,
  })
  .partial()
  .strict();

const metadataSchema = keyedRecord(z.unknown());
/** Free JSON; only the keys that would reach an object's prototype are refused. */
const propertiesSchema = keyedRecord(z.unknown(), z.string());

export const createCustomerSchema = z
  .object({
    id: idSchema,
    name: z.string().max(256).optional(),
    email: z.string().max(320).optional(),
    timezone: timezoneSchema.optional(),
    billingCycleStart: dateSchema.optional(),
    metadata: metadataSchema.optional(),
  })
  .strict();

export const updateCustomerSchema = z
  .object({
    name: z.string().max(256).nullable(),
    email: z.string().max(320).nullable(),
    timezone: timezoneSchema.nullable(),
    billingCycleStart: dateSchema,
    metadata: metadataSchema,
  })
  .partial()
  .strict();

export const recordEventSchema = z
  .object({
    customerId: idSchema,
    eventType: eventTypeSchema,
    values: valuesSchema.optional(),
    dimensions: dimensionsSchema.optional(),
    properties: propertiesSchema.optional(),
    timestamp: dateSchema.optional(),
    idempotencyKey: z.string().min(1).max(256).refine(storable, STORABLE).optional(),
  })
  .strict();

export const batchIngestSchema = z
  .object({ events: z.array(recordEventSchema).min(1, 'send at least one event').max(MAX_BATCH, `at most ${MAX_BATCH} events per batch`) })
  .strict();

const rangeShape = {
  startDate: dateSchema.optional(),
  endDate: dateSchema.optional(),
  customerId: idSchema.optional(),
  eventType: eventTypeSchema.optional(),
  dimensions: dimensionsSchema.optional(),
};

export const listEventsSchema = z
  .object({
    ...rangeShape,
    limit: z.number().int().min(1).max(1000).optional(),
    cursor: z.string().min(1).optional(),
  })
  .strict();

export const summarySchema = z.object(rangeShape).strict();

export const breakdownSchema = z
  .object({ ...rangeShape, groupBy: z.union([z.literal('customerId'), z.literal('eventType'), key]) })
  .strict();

export const timeseriesSchema = z
  .object({
    ...rangeShape,
    interval: z.enum(['minute', 'hour', 'day', 'week', 'month']),
    startDate: dateSchema,
    endDate: dateSchema,
    timezone: timezoneSchema.optional(),
  })
  .strict();

export const meterQuerySchema = z
  .object({ customerId: idSchema.optional(), dimensions: dimensionsSchema.optional(), startDate: dateSchema.optional(), endDate: dateSchema.optional() })
  .strict();

export const checkSchema = z
  .object({
    customerId: idSchema,
    eventType: eventTypeSchema.optional(),
    dimensions: dimensionsSchema.optional(),
    estimate: valuesSchema.optional(),
  })
  .strict();

export const reserveSchema = z
  .object({
    customerId: idSchema,
    eventType: eventTypeSchema,
    dimensions: dimensionsSchema.optional(),
    estimate: valuesSchema,
    ttlMs: z.number().int().min(1).max(MAX_TTL_MS).optional(),
  })
  .strict();

export const commitSchema = z
  .object({
    values: valuesSchema.optional(),
    dimensions: dimensionsSchema.optional(),
    properties: propertiesSchema.optional(),
    timestamp: dateSchema.optional(),
  })
  .strict();

export const listSchema = z
  .object({ limit: z.number().int().min(1).max(1000).optional(), cursor: z.string().min(1).optional() })
  .strict();

export type CreateMeterInput = z.input<typeof createMeterSchema>;
export type UpdateMeterInput = z.input<typeof updateMeterSchema>;
export type CreateLimitInput = z.input<typeof createLimitSchema>;
export type UpdateLimitInput = z.input<typeof updateLimitSchema>;
export type CreateCustomerInput = z.input<typeof createCustomerSchema>;
export type UpdateCustomerInput = z.input<typeof updateCustomerSchema>;
export type RecordEventInput = z.input<typeof recordEventSchema>;
export type BatchIngestInput = z.input<typeof batchIngestSchema>;
export type ListEventsInput = z.input<typeof listEventsSchema>;
export type SummaryInput = z.input<typeof summarySchema>;
export type BreakdownInput = z.input<typeof breakdownSchema>;
export type TimeseriesInput = z.input<typeof timeseriesSchema>;
export type MeterQueryInput = z.input<typeof meterQuerySchema>;
export type CheckInput = z.input<typeof checkSchema>;
export type ReserveInput = z.input<typeof reserveSchema>;
export type CommitInput = z.input<typeof commitSchema>;
export type ListInput = z.input<typeof listSchema>;

const aFunction = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', { message: 'expected a function' });

/**
 * The options of `createTollgate` that are plain values. Stores and declared definitions are
 * checked where they are used; an unknown key (a typo such as `timezon`) is rejected.
 */
export const tollgateOptionsSchema = z.strictObject({
  store: z.unknown().optional(),
  counters: z.unknown().optional(),
  meters: z.array(z.unknown()).optional(),
  limits: z.array(z.unknown()).optional(),
  timezone: timezoneSchema.optional(),
  onAlert: aFunction.optional(),
  onStoreError: z.enum(['open', 'closed']).optional(),
  storeTimeoutMs: z.number().positive().optional(),
  defaultTtlMs: z.number().int().min(1).max(MAX_TTL_MS).optional(),
  // Infinity (never reload) is allowed, which z.number() is not.
  cacheTtlMs: z.custom<number>((v) => typeof v === 'number' && v >= 0, { message: 'expected milliseconds: a number, 0 or more (Infinity: never reload)' }).optional(),
  now: aFunction.optional(),
});

/** Validates `input` against `schema`, or throws `invalid_request` naming every failing field. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues: FieldIssue[] = result.error.issues.map((issue) => {
    // zod reports a bad record key as "Invalid key in record"; the key's own rule says more.
    const inner = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
    return { path: issue.path.map(String).join('.') || '(input)', message: inner ?? issue.message };
  });
  const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new TollgateError('invalid_request', `Invalid ${what}: ${list}. Fix these fields and call again.`, { issues });
}
