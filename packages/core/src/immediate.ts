import type { CheckInput, RecordEventInput } from './schemas.js';
import type { Tollgate } from './tollgate.js';
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

/** The engine's immediate check and record, or for any other Tollgate its public (promised) ones. */
export function immediateOf(tollgate: Tollgate): Immediate {
  return (tollgate as { [IMMEDIATE]?: Immediate })[IMMEDIATE] ?? { check: (input) => tollgate.limits.check(input), record: (input) => tollgate.events.record(input) };
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
