import {
  Inject,
  Injectable,
  ServiceUnavailableException,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import {
  customerRequiredResponse,
  meterRequest,
  rateLimitHeaders,
  storeUnavailableResponse,
  type Decision,
  type HeaderOptions,
  type Tollgate,
} from '@tollgate/core';
import { TollgateLimitExceededException } from './exceptions.js';
import type { MeteredOptions, TollgateModuleOptions } from './options.js';
import { attachState, rawResponse, stateOf, type MeteringState } from './state.js';
import { METERED_METADATA, SKIP_METERING_METADATA, TOLLGATE, TOLLGATE_MODULE_OPTIONS } from './tokens.js';

/**
 * Decides before the handler: reserves the route's `estimate` when it has one (atomic), else
 * checks the customer's limits; throws {@link TollgateLimitExceededException} (429) when a limit
 * denies. Use it through `@Metered()`, or globally:
 * `{ provide: APP_GUARD, useClass: TollgateGuard }` (with `TollgateInterceptor` as
 * `APP_INTERCEPTOR`) meters every route not marked `@SkipMetering()`.
 *
 * Built to be extended: override the protected hooks, as with `@nestjs/throttler`'s guard.
 *
 * Without `TollgateInterceptor` on the route, the guard records the request itself when the
 * response is over, if its status is below 400, like `@tollgate/express`.
 */
@Injectable()
export class TollgateGuard implements CanActivate {
  protected readonly headerOptions: HeaderOptions;

  constructor(
    @Inject(TOLLGATE) protected readonly tollgate: Tollgate,
    @Inject(TOLLGATE_MODULE_OPTIONS) protected readonly options: TollgateModuleOptions,
    @Inject(Reflector) protected readonly reflector: Reflector,
    @Inject(HttpAdapterHost) protected readonly adapterHost: HttpAdapterHost,
  ) {
    this.headerOptions = {
      standardHeaders: options.standardHeaders === undefined ? 'draft-6' : options.standardHeaders,
      legacyHeaders: options.legacyHeaders ?? false,
    };
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    // A route can carry the guard twice (global and @Metered, controller and method): decide once.
    if (context.getType() !== 'http' || stateOf(context) || (await this.shouldSkip(context))) return true;
    const customerId = await this.getCustomerId(context);
    if (customerId === undefined || customerId === null || customerId === '') {
      await this.onMissingCustomer(context);
      return false;
    }
    const metered = this.getMetering(context);
    const session = await meterRequest(this.tollgate, {
      customerId,
      eventType: metered.eventType ?? this.options.eventType ?? 'http.request',
      dimensions: typeof metered.dimensions === 'function' ? await metered.dimensions(context) : metered.dimensions,
      estimate: typeof metered.estimate === 'function' ? await metered.estimate(context) : metered.estimate,
      onStoreError: this.options.onStoreError,
    });
    const state: MeteringState = { session, metered, intercepted: false };
    attachState(context, state);
    const { decision } = session;
    if (!decision.allowed) {
      if (decision.reason === 'store_error_closed') await this.onStoreUnavailable(context);
      else await this.onLimitExceeded(context, decision);
      return false;
    }
    context.switchToHttp().getRequest().tollgate = session;
    this.setHeaders(context, rateLimitHeaders(decision.limits, this.headerOptions));
    this.settleWhenResponseEnds(context, state);
    return true;
  }

  /** True leaves the request unmetered. Default: `@SkipMetering()` on the route or its controller. */
  protected async shouldSkip(context: ExecutionContext): Promise<boolean> {
    return this.reflector.getAllAndOverride<boolean>(SKIP_METERING_METADATA, [context.getHandler(), context.getClass()]) === true;
  }

  /** Which customer the request is for. Default: the module's `customerId(context)`. */
  protected async getCustomerId(context: ExecutionContext): Promise<string | undefined | null> {
    return this.options.customerId?.(context);
  }

  /** The route's `@Metered()` options: the controller's, overridden key by key by the method's. */
  protected getMetering(context: ExecutionContext): MeteredOptions {
    const onClass = this.reflector.get<MeteredOptions | undefined>(METERED_METADATA, context.getClass());
    const onHandler = this.reflector.get<MeteredOptions | undefined>(METERED_METADATA, context.getHandler());
    return onClass && onHandler ? { ...onClass, ...onHandler } : onHandler ?? onClass ?? {};
  }

  /** Sets headers on the response, whatever the platform. */
  protected setHeaders(context: ExecutionContext, headers: Record<string, string>): void {
    const response = context.switchToHttp().getResponse();
    const adapter = this.adapterHost.httpAdapter;
    for (const name in headers) adapter.setHeader(response, name, headers[name]);
  }

  /**
   * Answers a request a limit denied; throw what the client should get. Default: sets the
   * rate-limit headers and `Retry-After`, and throws {@link TollgateLimitExceededException} (429).
   */
  protected async onLimitExceeded(context: ExecutionContext, decision: Decision): Promise<void> {
    const headers = rateLimitHeaders(decision.limits, this.headerOptions);
    if (decision.retryAfter !== null) headers['Retry-After'] = String(decision.retryAfter);
    this.setHeaders(context, headers);
    throw new TollgateLimitExceededException(decision, headers);
  }

  /** Answers a request no customer was found for. Default: 401 `{ error: { code: 'customer_required', message } }`. */
  protected async onMissingCustomer(_context: ExecutionContext): Promise<void> {
    throw new UnauthorizedException(customerRequiredResponse().body);
  }

  /** Answers when the store failed and the policy is `closed`. Default: 503 `{ error: { code: 'store_unavailable', message } }`. */
  protected async onStoreUnavailable(_context: ExecutionContext): Promise<void> {
    throw new ServiceUnavailableException(storeUnavailableResponse().body);
  }

  /**
   * The interceptor settles what it sees; this covers requests it never saw (no interceptor on
   * the route, or a later guard refused): recorded when the status is below 400, else released.
   */
  private settleWhenResponseEnds(context: ExecutionContext, state: MeteringState): void {
    const response = rawResponse(context);
    // 'close' comes after 'finish' on every response, and alone when the client left first.
    response.once('close', () => {
      if (!state.intercepted) void state.session.settle({ record: response.statusCode < 400 });
    });
  }
}

