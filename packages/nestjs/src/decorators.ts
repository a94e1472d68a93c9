import { applyDecorators, createParamDecorator, SetMetadata, UseGuards, UseInterceptors, type ExecutionContext } from '@nestjs/common';
import type { RequestMetering } from '@tollgate/core';
import { validateMeteredOptions, type MeteredOptions } from './options.js';
import { TollgateGuard } from './tollgate.guard.js';
import { TollgateInterceptor } from './tollgate.interceptor.js';
import { METERED_METADATA, SKIP_METERING_METADATA } from './tokens.js';

/**
 * Meters a route, or every route of a controller: `TollgateGuard` reserves or checks before
 * the handler and `TollgateInterceptor` records after it, from what it returned. On a method
 * and its controller, the method's options override the controller's key by key.
 *
 * @example
 * @Post('chat')
 * @Metered({ eventType: 'llm.completion', estimate: { tokens: 1000 }, values: (r: ChatResult) => ({ tokens: r.usage.totalTokens }) })
 * chat(@Body() body: ChatDto) { ... }
 */
export function Metered<TResult = any>(options: MeteredOptions<TResult> = {}): ClassDecorator & MethodDecorator {
  return applyDecorators(
    SetMetadata(METERED_METADATA, validateMeteredOptions(options)),
    UseGuards(TollgateGuard),
    UseInterceptors(TollgateInterceptor),
  );
}

/**
 * Leaves a route (or a controller's routes) unmetered, also under a global `TollgateGuard`.
 * @example @Get('health') @SkipMetering() health() { return 'ok'; }
 */
export function SkipMetering(): ClassDecorator & MethodDecorator {
  return SetMetadata(SKIP_METERING_METADATA, true);
}

/**
 * The request's metering handle, for usage learned while handling it (tokens per streamed
 * chunk): `add(values)`, `setDimensions(dims)`, `skip()`, `decision`. Undefined on unmetered routes.
 * @example chat(@Metering() metering: RequestMetering) { ...; metering.add({ tokens: chunk.tokens }); }
 */
export const Metering = createParamDecorator((_data: unknown, context: ExecutionContext): RequestMetering | undefined => {
  return context.switchToHttp().getRequest().tollgate;
});
