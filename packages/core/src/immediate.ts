import type { CheckInput, RecordEventInput } from './schemas.js';
import type { CheckResult, RecordResult } from './types.js';

/**
 * The engine's check and record as the adapter helpers of this package (`http.ts`) call them:
 * they answer without a promise when nothing has to wait (the memory store, a cached customer),
 * which spares a metered request several promise hops. Not part of the public API: it is found
 * under {@link IMMEDIATE} on a Tollgate made by `createTollgate`, and anything else (a wrapped
 * Tollgate, say) is called through its public methods.
 */
export interface Immediate {
  check(input: CheckInput): CheckResult | Promise<CheckResult>;
  record(input: RecordEventInput): RecordResult | Promise<RecordResult>;
}

export const IMMEDIATE = Symbol('tollgate.immediate');

export function immediateOf(tollgate: object): Immediate | undefined {
  return (tollgate as { [IMMEDIATE]?: Immediate })[IMMEDIATE];
}

/** A promise of what `fn` returns or throws: the public API is asynchronous even when the work is not. */
export function promised<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    const value = fn();
    return value instanceof Promise ? value : Promise.resolve(value);
  } catch (error) {
    return Promise.reject(error);
  }
}
