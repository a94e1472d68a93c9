import {
  BadRequestException,
  Inject,
  Injectable,
  ServiceUnavailableException,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { GUARDS_METADATA } from '@nestjs/common/constants.js';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import {
  TollgateError,
  attachSession,
  customerRequiredResponse,
  invalidRequestResponse,
  meterRequest,
  rateLimitHeaders,
  storeUnavailableResponse,
  type Decision,
  type HeaderOptions,
  type MeteringSession,
  type Tollgate,
} from '@tollgate/core';
import { TollgateLimitExceededException } from './exceptions.js';
import type { MeteredOptions, TollgateModuleOptions } from './options.js';
import { attachState, rawResponse, stateOf, type MeteringState } from './state.js';
import { METERED_METADATA, SKIP_METERING_METADATA, TOLLGATE, TOLLGATE_MODULE_OPTIONS } from './tokens.js';

/** Whether a plain guard steps aside on a route (controller, then handler): see `defersToSubclass`. */
const defersByRoute = new WeakMap<object, WeakMap<object, boolean>>();

/**
 * Decides before the handler: reserves the route's `estimate` when it has one (atomic), else
 * checks the customer's limits; throws {@link TollgateLimitExceededException} (429) when a limit
 * denies. Use it through `@Metered()`, or globally:
 * `{ provide: APP_GUARD, useClass: TollgateGuard }` (with `TollgateInterceptor` as
 * `APP_INTERCEPTOR`) meters every route not marked `@SkipMetering()`.
 *
 * Built to be extended: override the protected hooks, as with `@nestjs/throttler`'s guard. A
 * plain `TollgateGuard` steps aside on a route that also carries a subclass, which then decides.
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
    if (context.getType() !== 'http' || stateOf(context) || this.defersToSubclass(context) || (await this.shouldSkip(context))) return true;
    const customerId = await this.getCustomerId(context);
    if (customerId === undefined || customerId === null || customerId === '') {
      await this.onMissingCustomer(context);
      return false;
    }
    const metered = this.getMetering(context);
    let session: MeteringSession;
    try {
      session = await meterRequest(this.tollgate, {
        customerId,
        eventType: metered.eventType ?? this.options.eventType ?? 'http.request',
        dimensions: typeof metered.dimensions === 'function' ? await metered.dimensions(context) : metered.dimensions,
        estimate: typeof metered.estimate === 'function' ? await metered.estimate(context) : metered.estimate,
        onStoreError: this.options.onStoreError,
      });
    } catch (error) {
      // The options were checked at start-up, so a bad input here came from the per-request callbacks.
      if (TollgateError.isInstance(error) && error.code === 'invalid_request') {
        await this.onInvalidRequest(context, error);
        return false;
      }
      throw error;
    }
    const state: MeteringState = { session, metered, intercepted: false, onClose: null };
    attachState(context, state);
    const { decision } = session;
    if (!decision.allowed) {
      if (decision.reason === 'store_error_closed') await this.onStoreUnavailable(context);
      else await this.onLimitExceeded(context, decision);
      return false;
    }
    // The client left while the decision was made ('close' has fired already): release the hold.
    const response = rawResponse(context);
    if (response.destroyed) {
      await session.settle({ record: false });
      return false;
    }
    this.settleWhenResponseEnds(context.switchToHttp().getRequest(), response, state);
    this.setHeaders(context, rateLimitHeaders(decision.limits, this.headerOptions));
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
   * Answers a request whose customer id, dimensions or estimate, as the module's and the route's
   * callbacks gave them, are not valid (a number as customer id, a dimension from an absent query
   * parameter). Default: 400 `{ error: { code: 'invalid_request', message, issues } }`, one
   * issue per field.
   */
  protected async onInvalidRequest(_context: ExecutionContext, error: TollgateError): Promise<void> {
    throw new BadRequestException(invalidRequestResponse(error).body);
  }

  /**
   * A plain `TollgateGuard` (the one `@Metered()` adds, or a global one) steps aside on a route
   * that also carries a subclass of it: the subclass knows the customer (an API key, a tenant),
   * and Nest runs a route's guards in the order they were added (the controller's, then the
   * method's, from the lowest decorator up), so the plain one could otherwise decide first.
   */
  private defersToSubclass(context: ExecutionContext): boolean {
    if (this.constructor !== TollgateGuard) return false;
    // A route's guards are fixed once the app is built: look them up once per controller and handler.
    const controller = context.getClass();
    const handler = context.getHandler();
    let byHandler = defersByRoute.get(controller);
    if (byHandler === undefined) defersByRoute.set(controller, (byHandler = new WeakMap()));
    let defers = byHandler.get(handler);
    if (defers === undefined) {
      const guards = this.reflector.getAllAndMerge<unknown[]>(GUARDS_METADATA, [handler, controller]);
      defers = guards.some((guard) => (typeof guard === 'function' ? guard.prototype instanceof TollgateGuard : guard instanceof TollgateGuard && guard.constructor !== TollgateGuard));
      byHandler.set(handler, defers);
    }
    return defers;
  }

  /**
   * The interceptor settles what it sees, and when its handler completed before the response was
   * over it leaves `onClose` to run here. This covers requests it never saw (no interceptor on the
   * route, or a later guard refused): recorded when the status is below 400, else released.
   */
  private settleWhenResponseEnds(request: object, response: ServerResponse, state: MeteringState): void {
    // Also makes the session the request's `tollgate` (the listener carries it).
    attachSession(request, response, state.session, () => {
      if (state.onClose !== null) state.onClose();
      else if (!state.intercepted) void state.session.settle({ record: response.statusCode < 400 });
    });
  }
}

