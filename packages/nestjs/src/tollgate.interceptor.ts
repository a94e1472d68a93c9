import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Observable } from 'rxjs';
import { stateOf } from './state.js';

/**
 * Records after the handler, from what it returned: commits the guard's reservation (or records
 * the event) when the handler completes, releases the hold when it throws. For an Observable
 * handler (SSE, streams), it records once when the stream completes, or, when the client leaves
 * first, once with the usage reported so far and the estimate for the rest. Applied with
 * `@Metered()`, or globally as `APP_INTERCEPTOR` next to a global `TollgateGuard`.
 */
@Injectable()
export class TollgateInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const state = context.getType() === 'http' ? stateOf(context) : undefined;
    if (!state || state.intercepted || !state.session.decision.allowed) return next.handle();
    state.intercepted = true;
    const { session, metered } = state;
    let last: unknown;
    const record = () => {
      if (session.settled) return;
      let values;
      try {
        values = metered.values?.(last, context);
      } catch (error) {
        process.emitWarning(`Tollgate @Metered() values threw, so the request was not recorded: ${(error as Error)?.message ?? error}`, { code: 'TOLLGATE_RECORD_FAILED' });
        void session.settle({ record: false });
        return;
      }
      void session.settle({ record: true, values });
    };
    return new Observable((subscriber) => {
      const subscription = next.handle().subscribe({
        next: (value) => {
          last = value;
          subscriber.next(value);
        },
        error: (error) => {
          void session.settle({ record: false });
          subscriber.error(error);
        },
        complete: () => {
          record();
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        // Torn down before completing: the client left mid-stream.
        record();
      };
    });
  }
}
