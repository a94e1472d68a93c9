import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { Values } from '@tollgate/core';
import { Observable } from 'rxjs';
import { rawResponse, stateOf } from './state.js';

/**
 * Records after the handler, from what it returned: commits the guard's reservation (or records
 * the event) once the response is over, releases the hold when the handler throws. For an
 * Observable handler (SSE, streams), it records once when the stream completes, or, when the
 * client leaves first, once with the usage reported so far and the estimate for the rest. A
 * route that keeps writing through `@Res()` after its handler returned is recorded when that
 * response ends, with what it added meanwhile. Applied with `@Metered()`, or globally as
 * `APP_INTERCEPTOR` next to a global `TollgateGuard`.
 */
@Injectable()
export class TollgateInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const state = context.getType() === 'http' ? stateOf(context) : undefined;
    if (!state || state.intercepted || !state.session.decision.allowed) return next.handle();
    state.intercepted = true;
    const { session, metered } = state;
    // Whether the handler produced a value at all, and its last one (which may be `undefined`).
    let produced = false;
    let last: unknown;
    let ended = false;
    const valuesOfResult = (): Values | undefined => (produced && metered.values ? metered.values(last, context) : undefined);
    // `left`: torn down before completing (the client left mid-stream, or an outer interceptor
    // such as a timeout gave up). The work was done, so what was added and the estimate stand in
    // even when `values` throws; a completed request whose `values` throws is released.
    const record = (left: boolean) => {
      if (session.settled) return;
      let values;
      try {
        values = valuesOfResult();
      } catch (error) {
        process.emitWarning(`Tollgate @Metered() values threw, ${left ? 'so the request was recorded with the usage added and the estimate' : 'so the request was not recorded'}: ${(error as Error)?.message ?? error}`, { code: 'TOLLGATE_RECORD_FAILED' });
        if (!left) {
          void session.settle({ record: false });
          return;
        }
      }
      void session.settle({ record: true, values });
    };
    return new Observable((subscriber) => {
      const subscription = next.handle().subscribe({
        next: (value) => {
          produced = true;
          last = value;
          subscriber.next(value);
        },
        error: (error) => {
          ended = true;
          void session.settle({ record: false });
          subscriber.error(error);
        },
        complete: () => {
          ended = true;
          // A handler completes before Nest writes its answer, and one holding @Res() may go on
          // writing (a piped model stream) and adding usage: record once the response is over.
          const response = rawResponse(context);
          if (response.writableEnded || response.destroyed) record(false);
          else state.onClose = () => record(false);
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        if (!ended) record(true);
      };
    });
  }
}
