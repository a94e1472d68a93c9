import type { RequestMetering } from '@tollgate/core';

export { meter } from './meter.js';
export type { MeterOptions } from './options.js';
export type { Decision, RateLimitHeadersDraft, RequestMetering } from '@tollgate/core';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /**
       * Set by `meter()` on metered routes: the decision, and `add(values)`,
       * `setDimensions(dims)` and `skip()` for what the handler learns late.
       * @example req.tollgate?.add({ tokens: completion.usage.totalTokens })
       */
      tollgate?: RequestMetering;
    }
  }
}
