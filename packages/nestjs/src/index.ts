export { TollgateModule } from './tollgate.module.js';
export { TollgateGuard } from './tollgate.guard.js';
export { TollgateInterceptor } from './tollgate.interceptor.js';
export { Metered, SkipMetering, Metering } from './decorators.js';
export { TollgateLimitExceededException } from './exceptions.js';
export { Tollgate, InjectTollgate, TOLLGATE, TOLLGATE_MODULE_OPTIONS, METERED_METADATA, SKIP_METERING_METADATA } from './tokens.js';
export type { TollgateModuleOptions, TollgateModuleAsyncOptions, MeteredOptions } from './options.js';
export type { Decision, RateLimitHeadersDraft, RequestMetering } from '@tollgate/core';
