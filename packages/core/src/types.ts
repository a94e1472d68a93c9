/** How a meter turns matching events into one number. */
export type Aggregation = 'sum' | 'count' | 'max' | 'min' | 'latest' | 'avg' | 'unique';

/** A calendar period, `all_time`, or a fixed epoch-aligned duration such as `'30s'`, `'5m'`, `'2h'`, `'7d'`. */
export type Period =
  | 'minute'
  | 'hour'
  | 'day'
  | 'week'
  | 'month'
  | 'annual'
  | 'all_time'
  | `${number}${'s' | 'm' | 'h' | 'd'}`;

export type Dimensions = Record<string, string>;
export type Values = Record<string, number>;

/** One recorded operation by one customer. Timestamps are ISO strings. */
export interface Event {
  id: string;
  customerId: string;
  eventType: string;
  values: Values;
  dimensions: Dimensions;
  properties?: Record<string, unknown>;
  timestamp: string;
  idempotencyKey?: string;
}

export interface EventFilter {
  eventType?: string;
  dimensions?: Dimensions;
}

export interface Meter {
  id: string;
  name: string;
  aggregation: Aggregation;
  /** `'*'` for count, else a path such as `values.tokens` or `dimensions.user_id`. */
  field: string;
  eventFilter?: EventFilter;
  createdAt: string;
  updatedAt: string;
}

export type LimitMode = 'hard' | 'soft';

export interface Limit {
  id: string;
  name: string;
  meterId: string;
  limitValue: number;
  period: Period;
  /** Absent: applies to every customer, each with their own count. */
  customerId?: string;
  dimensionFilters?: Dimensions;
  /** Percentages 1–100 at which `onAlert` fires. */
  alertThresholds?: number[];
  mode: LimitMode;
  createdAt: string;
  updatedAt: string;
}

export interface Customer {
  id: string;
  name?: string;
  email?: string;
  /** IANA timezone; absent means the Tollgate default timezone. */
  timezone?: string;
  /** Anchor of monthly and annual windows (ISO). */
  billingCycleStart: string;
  metadata: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** The state of one limit for one customer in the current window. */
export interface LimitStatus {
  limitId: string;
  limitName: string;
  meterId: string;
  customerId: string;
  mode: LimitMode;
  period: Period;
  limit: number;
  used: number;
  remaining: number;
  exceeded: boolean;
  /** Whether this limit lets the operation through (soft limits always do). */
  allowed: boolean;
  /** End of the window in Unix seconds; null for `all_time`. */
  reset: number | null;
  windowStart: string;
  windowEnd: string | null;
}

/**
 * Why a decision came out as it did when it was not decided by the limits alone.
 * `store_error_open` / `store_error_closed`: the counters store failed or timed out and the
 * `onStoreError` policy decided.
 */
export type DecisionReason = 'limits' | 'store_error_open' | 'store_error_closed';

export interface CheckResult {
  allowed: boolean;
  limits: LimitStatus[];
  reason: DecisionReason;
  /** When denied: seconds until every blocking window has reset (null if one never resets, or when allowed). */
  retryAfter: number | null;
}

export interface AlertEvent {
  type: 'limit.threshold_reached' | 'limit.exceeded';
  customerId: string;
  limitId: string;
  limitName: string;
  threshold: number;
  limit: number;
  used: number;
  percentage: number;
  remaining: number;
  period: Period;
  windowStart: string;
  windowEnd: string | null;
  timestamp: string;
}

export interface RecordResult {
  id: string;
  /** False when the idempotency key was seen before: nothing new was stored or counted. */
  recorded: boolean;
}

export interface Page<T> {
  data: T[];
  hasMore: boolean;
  nextCursor: string | null;
}

export interface Summary {
  totalEvents: number;
  values: Record<string, number>;
}

export interface BreakdownRow {
  dimension: string | null;
  totalEvents: number;
  values: Record<string, number>;
}

export interface TimeseriesPoint {
  start: string;
  end: string;
  totalEvents: number;
  values: Record<string, number>;
}
