import { TollgateError, eventTypeSchema, parse, type Tollgate } from '@tollgate/core';
import type { LanguageModelMiddleware } from 'ai';
import { MeteredCall, type Settings } from './metered-call.js';
import type { CallParams, ModelCall, ModelPrice, TollgateMiddlewareOptions, TollgateProviderOptions } from './options.js';
import { finishReasonOf, meterStream } from './stream.js';

interface ModelLike {
  modelId: string;
  provider: string;
}

interface GenerateResultLike {
  usage?: unknown;
  finishReason?: unknown;
}

interface StreamResultLike {
  stream: ReadableStream<{ type: string; [key: string]: unknown }>;
}

function invalid(path: string, message: string): TollgateError {
  return new TollgateError('invalid_request', `Invalid tollgateMiddleware options: ${path}: ${message}.`, { issues: [{ path, message }] });
}

function settingsOf(tollgate: Tollgate, options: TollgateMiddlewareOptions): Settings {
  if (!tollgate || typeof tollgate.reserve !== 'function') throw invalid('tollgate', 'pass the engine from createTollgate()');
  const eventType = parse(eventTypeSchema, options.eventType ?? 'llm.completion', 'tollgateMiddleware options.eventType');
  const enforcement = options.enforcement ?? 'reserve';
  if (enforcement !== 'reserve' && enforcement !== 'check') throw invalid('enforcement', "expected 'reserve' or 'check'");
  const failedCallUsage = options.failedCallUsage ?? 'observed';
  if (failedCallUsage !== 'observed' && failedCallUsage !== 'estimate') throw invalid('failedCallUsage', "expected 'observed' or 'estimate'");
  const defaultOutputTokens = options.defaultOutputTokens ?? 1024;
  if (!Number.isInteger(defaultOutputTokens) || defaultOutputTokens < 0) throw invalid('defaultOutputTokens', 'expected a whole number of tokens, 0 or more');
  if (options.specificationVersion !== undefined && options.specificationVersion !== 'v3' && options.specificationVersion !== 'v4') {
    throw invalid('specificationVersion', "expected 'v3' (AI SDK 6) or 'v4' (AI SDK 7)");
  }
  for (const [modelId, price] of Object.entries(options.prices ?? {})) {
    for (const key of ['inputPerMillion', 'outputPerMillion', 'cachedInputPerMillion'] as const) {
      const v = (price as ModelPrice)?.[key];
      if (v === undefined && key === 'cachedInputPerMillion') continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalid(`prices.${modelId}.${key}`, 'expected dollars per million tokens, a finite number 0 or more');
    }
  }
  return {
    tollgate,
    customerId: options.customerId,
    eventType,
    dimensions: options.dimensions,
    enforcement,
    estimate: options.estimate,
    defaultOutputTokens,
    prices: options.prices,
    failedCallUsage,
    ttlMs: options.ttlMs,
    onRecordError: options.onRecordError,
  };
}

/**
 * Language-model middleware that meters and limits every model call per customer: before
 * `doGenerate`/`doStream` it reserves the call's estimated tokens against the customer's limits
 * (and throws `TollgateError` `limit_exceeded` without calling the model when they do not fit);
 * after, it records one `llm.completion` event with the tokens the model reported, latency, and
 * the `model` and `provider` dimensions. Streams record when they end, however they end.
 *
 * The customer comes from `options.customerId` or, per call, from
 * `providerOptions: { tollgate: { customerId } }` (removed before the provider sees the call).
 *
 * @example
 * const model = wrapLanguageModel({
 *   model: openai('gpt-4o-mini'),
 *   middleware: tollgateMiddleware(tollgate, { prices: { 'gpt-4o-mini': { inputPerMillion: 0.15, outputPerMillion: 0.6 } } }),
 * });
 * await generateText({ model, prompt, providerOptions: { tollgate: { customerId: 'cus_123' } } });
 */
export function tollgateMiddleware(tollgate: Tollgate, options: TollgateMiddlewareOptions = {}): LanguageModelMiddleware {
  const settings = settingsOf(tollgate, options);
  // transformParams strips our provider options so the provider never receives them; the
  // transformed params object is what wrapGenerate/wrapStream then receive.
  const perCall = new WeakMap<object, TollgateProviderOptions>();

  const perCallOf = (params: CallParams): TollgateProviderOptions | undefined =>
    perCall.get(params) ?? (params.providerOptions?.tollgate as TollgateProviderOptions | undefined);

  const callOf = (type: 'generate' | 'stream', params: CallParams, model: ModelLike): ModelCall => ({
    type,
    modelId: model.modelId,
    provider: model.provider,
    params,
  });

  const middleware = {
    specificationVersion: options.specificationVersion ?? 'v4',

    transformParams: async ({ params }: { params: CallParams }) => {
      const providerOptions = params.providerOptions;
      if (providerOptions?.tollgate === undefined) return params;
      const { tollgate: own, ...rest } = providerOptions;
      const next: CallParams = { ...params, providerOptions: Object.keys(rest).length > 0 ? rest : undefined };
      perCall.set(next, own as TollgateProviderOptions);
      return next;
    },

    wrapGenerate: async ({ doGenerate, params, model }: { doGenerate: () => PromiseLike<GenerateResultLike>; params: CallParams; model: ModelLike }) => {
      const call = await MeteredCall.start(settings, callOf('generate', params, model), perCallOf(params));
      let result: GenerateResultLike;
      try {
        result = await doGenerate();
      } catch (error) {
        await call.finishUnattended({ outcome: params.abortSignal?.aborted ? 'aborted' : 'error', error });
        throw error;
      }
      await call.finish({ outcome: 'completed', usage: result.usage, finishReason: finishReasonOf(result.finishReason) });
      return result;
    },

    wrapStream: async ({ doStream, params, model }: { doStream: () => PromiseLike<StreamResultLike>; params: CallParams; model: ModelLike }) => {
      const call = await MeteredCall.start(settings, callOf('stream', params, model), perCallOf(params));
      let result: StreamResultLike;
      try {
        result = await doStream();
      } catch (error) {
        await call.finishUnattended({ outcome: params.abortSignal?.aborted ? 'aborted' : 'error', error });
        throw error;
      }
      return { ...result, stream: meterStream(result.stream, call, params.abortSignal) };
    },
  };
  // One object serves both specification versions: the AI SDK passes V3 or V4 call options and
  // results, and the middleware reads only the fields the two share.
  return middleware as unknown as LanguageModelMiddleware;
}
