import { randomUUID } from 'node:crypto';
import { TollgateError, type Dimensions, type LimitStatus, type Reservation, type Tollgate, type Values } from '@tollgate/core';
import type { FailedRecord, ModelCall, ModelPrice, TollgateMiddlewareOptions, TollgateProviderOptions } from './options.js';
import { costCents, estimateInputTokens, readUsage, tokensFromChars } from './usage.js';

/** The middleware's options with defaults applied and validated once, at construction. */
export interface Settings {
  tollgate: Tollgate;
  customerId: TollgateMiddlewareOptions['customerId'];
  eventType: string;
  dimensions: TollgateMiddlewareOptions['dimensions'];
  enforcement: 'reserve' | 'check';
  estimate: TollgateMiddlewareOptions['estimate'];
  defaultOutputTokens: number;
  prices: Record<string, ModelPrice> | undefined;
  failedCallUsage: 'observed' | 'estimate';
  ttlMs: number | undefined;
  onRecordError: TollgateMiddlewareOptions['onRecordError'];
}

/** How a model call ended, as the middleware observed it. */
export interface CallEnd {
  outcome: 'completed' | 'aborted' | 'error';
  /** The usage the model reported, in any AI SDK shape; undefined when it reported none. */
  usage?: unknown;
  /** Characters of output streamed before an abort or error. */
  observedOutputChars?: number;
  finishReason?: string;
  error?: unknown;
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function denied(customerId: string, estimate: Values, reason: string, limits: LimitStatus[], retryAfter: number | null): TollgateError {
  if (reason === 'store_error_closed') {
    return new TollgateError('store_unavailable', `Model call for customer "${customerId}" was denied because the counters store is unreachable and onStoreError is 'closed'. Check the store, or use onStoreError: 'open' to allow calls while it is down.`);
  }
  const blocking = limits.filter((l) => !l.allowed).map((l) => `"${l.limitName}" (${l.used} of ${l.limit} used this ${l.period})`);
  const retry = retryAfter === null ? 'The limit never resets: raise it or remove it to allow more calls.' : `Retry after ${retryAfter} s or raise the limit.`;
  const cost = estimate.costCents === undefined ? '' : ` (${estimate.costCents} cents)`;
  return new TollgateError(
    'limit_exceeded',
    `Model call for customer "${customerId}", estimated at ${estimate.totalTokens} tokens${cost}, would exceed ${blocking.join(', ')}; the model was not called. ${retry} A lower maxOutputTokens lowers the estimate.`,
    { limits, retryAfter },
  );
}

/**
 * One model call's metering: decided before the model runs, recorded exactly once when it ends,
 * however it ends.
 */
export class MeteredCall {
  private done: Promise<void> | undefined;
  private logged = false;
  private readonly startedAt = performance.now();

  private constructor(
    private readonly settings: Settings,
    readonly customerId: string,
    private readonly dimensions: Dimensions,
    private readonly estimate: { inputTokens: number; outputTokens: number },
    private readonly price: ModelPrice | undefined,
    private readonly reservation: Reservation | undefined,
  ) {}

  /**
   * Resolves the customer, dimensions and estimate, and reserves (or checks) before the model
   * runs. Throws `limit_exceeded` when the call may not run, `invalid_request` when no customer.
   */
  static async start(settings: Settings, call: ModelCall, perCall: TollgateProviderOptions | undefined): Promise<MeteredCall> {
    const customerId = perCall?.customerId ?? (typeof settings.customerId === 'function' ? await settings.customerId(call) : settings.customerId);
    if (typeof customerId !== 'string' || customerId.length === 0) {
      throw new TollgateError('invalid_request', 'No customer for this model call. Pass customerId to tollgateMiddleware(), or providerOptions: { tollgate: { customerId } } on the call (meteredAI does this for you).', {
        issues: [{ path: 'customerId', message: 'missing' }],
      });
    }
    const base = typeof settings.dimensions === 'function' ? await settings.dimensions(call) : settings.dimensions;
    const dimensions: Dimensions = { ...base, ...perCall?.dimensions, model: call.modelId, provider: call.provider };
    const custom = settings.estimate ? await settings.estimate(call) : undefined;
    const estimate = {
      inputTokens: count(custom?.inputTokens) ?? estimateInputTokens(call.params),
      outputTokens: count(custom?.outputTokens) ?? count(call.params.maxOutputTokens) ?? settings.defaultOutputTokens,
    };
    const price = settings.prices?.[call.modelId];
    const values: Values = { inputTokens: estimate.inputTokens, outputTokens: estimate.outputTokens, totalTokens: estimate.inputTokens + estimate.outputTokens };
    if (price) values.costCents = costCents(price, estimate.inputTokens, estimate.outputTokens);

    const { tollgate, eventType } = settings;
    if (settings.enforcement === 'check') {
      const check = await tollgate.limits.check({ customerId, eventType, dimensions, estimate: values });
      if (!check.allowed) throw denied(customerId, values, check.reason, check.limits, check.retryAfter);
      return new MeteredCall(settings, customerId, dimensions, estimate, price, undefined);
    }
    const reservation = await tollgate.reserve({ customerId, eventType, dimensions, estimate: values, ttlMs: settings.ttlMs });
    if (!reservation.allowed) throw denied(customerId, values, reservation.reason, reservation.limits, reservation.retryAfter);
    return new MeteredCall(settings, customerId, dimensions, estimate, price, reservation);
  }

  /**
   * Records the call once; later calls return the first record's promise. Rejects with the store's
   * error when recording fails and no `onRecordError` is set.
   */
  finish(end: CallEnd): Promise<void> {
    this.done ??= this.record(end);
    return this.done;
  }

  /** {@link finish} where no caller is left to receive a recording error: it is logged instead. */
  finishUnattended(end: CallEnd): Promise<void> {
    return this.finish(end).catch((error) => {
      if (this.logged) return;
      this.logged = true;
      console.error('[@tollgate/ai] Recording a model call failed and no onRecordError is set:', error);
    });
  }

  private async record(end: CallEnd): Promise<void> {
    const latencyMs = Math.round(performance.now() - this.startedAt);
    const reported = end.usage === undefined ? undefined : readUsage(end.usage);
    let inputTokens: number;
    let outputTokens: number;
    let source: 'provider' | 'estimate' | 'observed';
    if (reported || end.outcome === 'completed') {
      inputTokens = reported?.inputTokens ?? this.estimate.inputTokens;
      outputTokens = reported?.outputTokens ?? this.estimate.outputTokens;
      source = reported?.inputTokens === undefined || reported.outputTokens === undefined ? 'estimate' : 'provider';
    } else if (this.settings.failedCallUsage === 'estimate') {
      inputTokens = this.estimate.inputTokens;
      outputTokens = this.estimate.outputTokens;
      source = 'estimate';
    } else {
      inputTokens = this.estimate.inputTokens;
      outputTokens = tokensFromChars(end.observedOutputChars ?? 0);
      source = 'observed';
    }
    const cachedInputTokens = source === 'provider' ? reported?.cachedInputTokens ?? 0 : 0;
    const values: Values = {
      inputTokens,
      outputTokens,
      totalTokens: source === 'provider' && reported?.totalTokens !== undefined ? reported.totalTokens : inputTokens + outputTokens,
      cachedInputTokens,
      reasoningTokens: source === 'provider' ? reported?.reasoningTokens ?? 0 : 0,
      latencyMs,
    };
    if (this.price) values.costCents = costCents(this.price, inputTokens, outputTokens, cachedInputTokens);
    const dimensions: Dimensions = { usage_source: source, outcome: end.outcome };
    const properties: Record<string, unknown> = {};
    if (end.finishReason !== undefined) properties.finishReason = end.finishReason;
    if (end.error !== undefined) properties.error = describe(end.error);

    try {
      if (this.reservation) {
        await this.reservation.commit({ values, dimensions, properties });
      } else {
        await this.settings.tollgate.events.record({
          customerId: this.customerId,
          eventType: this.settings.eventType,
          values,
          dimensions: { ...this.dimensions, ...dimensions },
          properties,
          idempotencyKey: `llm_${randomUUID()}`,
        });
      }
    } catch (error) {
      const onRecordError = this.settings.onRecordError;
      if (!onRecordError) throw error;
      const event: FailedRecord = { customerId: this.customerId, eventType: this.settings.eventType, values, dimensions: { ...this.dimensions, ...dimensions } };
      try {
        onRecordError(error, event);
      } catch {
        // A failing error handler must not turn a served model call into a failed one.
      }
    }
  }
}

function describe(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}
