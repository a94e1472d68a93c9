import type { LimitStatus } from './types.js';

/** Stable machine-readable error codes. Each is documented in the core README. */
export type TollgateErrorCode =
  | 'invalid_request'
  | 'meter_not_found'
  | 'limit_not_found'
  | 'customer_not_found'
  | 'already_exists'
  | 'limit_exceeded'
  | 'store_unavailable'
  | 'store_timeout';

/** One failing field of an `invalid_request` error. */
export interface FieldIssue {
  /** Dotted path of the field, e.g. `values.tokens` or `events.3.customerId`. */
  path: string;
  message: string;
}

const marker = Symbol.for('tollgate.error');

export interface TollgateErrorOptions {
  cause?: unknown;
  /** For `invalid_request`: every field that failed. */
  issues?: FieldIssue[];
  /** For `limit_exceeded`: the status of every applicable limit. */
  limits?: LimitStatus[];
  /** For `limit_exceeded`: seconds until every blocking window has reset (null when one never resets). */
  retryAfter?: number | null;
}

/**
 * The one error class Tollgate throws. Match on `code`, which is stable, not on `message`,
 * which says what to do and may improve. Use {@link TollgateError.isInstance} rather than
 * `instanceof` when several copies of `@tollgate/core` may be installed.
 */
export class TollgateError extends Error {
  readonly [marker] = true;
  readonly code: TollgateErrorCode;
  readonly issues?: FieldIssue[];
  readonly limits?: LimitStatus[];
  readonly retryAfter?: number | null;

  constructor(code: TollgateErrorCode, message: string, options: TollgateErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TollgateError';
    this.code = code;
    if (options.issues) this.issues = options.issues;
    if (options.limits) this.limits = options.limits;
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
  }

  /** True for any TollgateError, also one thrown by another installed copy of this package. */
  static isInstance(error: unknown): error is TollgateError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }

  /** A plain JSON shape for HTTP answers and logs. */
  toJSON() {
    return {
      code: this.code,
      message: this.message,
      ...(this.issues ? { issues: this.issues } : {}),
      ...(this.limits ? { limits: this.limits } : {}),
      ...(this.retryAfter !== undefined ? { retryAfter: this.retryAfter } : {}),
    };
  }
}

export function notFound(kind: 'meter' | 'limit' | 'customer', id: string): TollgateError {
  return new TollgateError(
    `${kind}_not_found`,
    `No ${kind} with id "${id}". Create it first with tollgate.${kind}s.create({ id: "${id}", ... }) or check the id.`,
  );
}

export function alreadyExists(kind: 'meter' | 'limit' | 'customer', id: string): TollgateError {
  return new TollgateError(
    'already_exists',
    `A ${kind} with id "${id}" already exists. Use tollgate.${kind}s.update("${id}", ...) to change it, or pick another id.`,
  );
}
