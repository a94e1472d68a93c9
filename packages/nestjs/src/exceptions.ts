import { HttpException, HttpStatus } from '@nestjs/common';
import { limitExceededBody, type Decision } from '@tollgate/core';

/**
 * Thrown by `TollgateGuard` when a limit denies a request: 429 with the same body as
 * `@tollgate/express`, `{ error: { code: 'limit_exceeded', message, limits } }`. The guard has
 * already set the rate-limit headers and `Retry-After` on the response; they are also on
 * `headers` for exception filters that build their own answer.
 *
 * @example
 * @Catch(TollgateLimitExceededException)
 * class UpgradeFilter implements ExceptionFilter {
 *   catch(e: TollgateLimitExceededException, host: ArgumentsHost) {
 *     host.switchToHttp().getResponse().status(402).json({ upgrade: true, limits: e.decision.limits });
 *   }
 * }
 */
export class TollgateLimitExceededException extends HttpException {
  constructor(
    readonly decision: Decision,
    readonly headers: Record<string, string> = {},
  ) {
    super(limitExceededBody(decision), HttpStatus.TOO_MANY_REQUESTS);
    this.name = 'TollgateLimitExceededException';
  }
}
