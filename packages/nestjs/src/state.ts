import type { ExecutionContext } from '@nestjs/common';
import type { MeteringSession } from '@tollgate/core';
import type { MeteredOptions } from './options.js';

const STATE = Symbol.for('@tollgate/nestjs:metering');

/** What the guard leaves on the request for the interceptor. */
export interface MeteringState {
  session: MeteringSession;
  metered: MeteredOptions;
  /** Set by the first interceptor: from then on it alone settles the session. */
  intercepted: boolean;
  /**
   * Set by the interceptor when the handler completed before its response was over: the guard's
   * 'close' listener (one per request) runs it.
   */
  onClose: (() => void) | null;
}

type Carrier = Record<symbol, MeteringState | undefined>;

export function stateOf(context: ExecutionContext): MeteringState | undefined {
  return (context.switchToHttp().getRequest() as Carrier)[STATE];
}

export function attachState(context: ExecutionContext, state: MeteringState): void {
  (context.switchToHttp().getRequest() as Carrier)[STATE] = state;
}

/** The Node.js response under the host's (Fastify's reply wraps it in `raw`). */
export function rawResponse(context: ExecutionContext): import('node:http').ServerResponse {
  const response = context.switchToHttp().getResponse();
  return response.raw ?? response;
}
