import type { Dimensions } from '@tollgate/core';

/**
 * One model call as the middleware sees it: what `customerId`, `dimensions` and `estimate`
 * functions receive. `params` are the AI SDK's call options for this one call (one step of a
 * multi-step `generateText` is one call).
 */
export interface ModelCall {
  /** `'generate'` for `doGenerate` (`generateText`), `'stream'` for `doStream` (`streamText`). */
  type: 'generate' | 'stream';
  /** The model's id, e.g. `'gpt-4o-mini'`. */
  modelId: string;
  /** The model's provider id, e.g. `'openai.chat'`. */
  provider: string;
  /**
   * The language-model call options: `prompt`, `maxOutputTokens`, `tools`, `providerOptions`,
   * `abortSignal`, … (`LanguageModelV4CallOptions` on AI SDK 7, `LanguageModelV3CallOptions` on 6).
   */
  params: CallParams;
}

/** The parts of the AI SDK's call options Tollgate reads; the real object carries more. */
export interface CallParams {
  prompt: ReadonlyArray<unknown>;
  maxOutputTokens?: number;
  tools?: ReadonlyArray<unknown>;
  providerOptions?: Record<string, Record<string, unknown> | undefined>;
  abortSignal?: AbortSignal;
  [key: string]: unknown;
}

/** Tokens a call is expected to use, held by the reservation before the model runs. */
export interface TokenEstimate {
  /** Prompt tokens. Default: the prompt's and the tool definitions' characters / 4. */
  inputTokens?: number;
  /** Completion tokens. Default: the call's `maxOutputTokens`, else `defaultOutputTokens`. */
  outputTokens?: number;
}

/**
 * A model's list price in US dollars per million tokens, as providers publish it. Tollgate turns
 * it into `values.costCents` (US cents) on every recorded call and on every estimate.
 */
export interface ModelPrice {
  /** Dollars per million input tokens that were not read from the provider's prompt cache. */
  inputPerMillion: number;
  /** Dollars per million output tokens (reasoning tokens included). */
  outputPerMillion: number;
  /** Dollars per million input tokens read from the prompt cache. Default: `inputPerMillion`. */
  cachedInputPerMillion?: number;
}

/** Prices by model id (the model's `modelId`, e.g. `'gpt-4o-mini'`). */
export type PriceTable = Record<string, ModelPrice>;

/** What the middleware was about to record when recording failed. */
export interface FailedRecord {
  /** The customer the call was for. */
  customerId: string;
  /** The event type that was to be recorded, e.g. `'llm.completion'`. */
  eventType: string;
  /** The values that were to be recorded: tokens, latency and, when priced, `costCents`. */
  values: Record<string, number>;
  /** Every dimension of the event, `model`, `provider`, `usage_source` and `outcome` included. */
  dimensions: Dimensions;
}

/** Per-call settings passed as `providerOptions: { tollgate: { ... } }` on an AI SDK call. */
export interface TollgateProviderOptions {
  /** The customer this call is for. Takes precedence over the middleware's `customerId` option. */
  customerId?: string;
  /** Extra dimensions for this call, merged over the middleware's `dimensions`. */
  dimensions?: Dimensions;
}

export interface TollgateMiddlewareOptions {
  /**
   * Who the call is for: a fixed id, or a function of the call (for example one that reads your
   * request context from `AsyncLocalStorage`). A per-call `providerOptions.tollgate.customerId`
   * takes precedence. A call with no customer fails with `invalid_request` before the model runs:
   * Tollgate never lets a call through unmetered.
   * Default: none (each call must name its customer).
   * @example customerId: () => requestContext.getStore()?.orgId
   */
  customerId?: string | ((call: ModelCall) => string | undefined | Promise<string | undefined>);

  /**
   * The event type recorded for each model call; meters filter on it.
   * Default `'llm.completion'`.
   * @example eventType: 'llm.chat'
   */
  eventType?: string;

  /**
   * Extra dimensions on every reservation and event (`model` and `provider` are always added).
   * Default: none.
   * @example dimensions: (call) => ({ feature: 'support-bot', route: call.type })
   */
  dimensions?: Dimensions | ((call: ModelCall) => Dimensions | Promise<Dimensions>);

  /**
   * How the call is gated before the model runs.
   * - `'reserve'` (default): atomically reserves the estimate against every applicable limit, so
   *   concurrent calls racing for the last tokens cannot all get through; the hold is replaced by
   *   the real usage when the call ends.
   * - `'check'`: a read-only check with the estimate and a plain record afterwards. One fewer
   *   write, but concurrent calls can overshoot a limit by what is in flight.
   * @example enforcement: 'check'
   */
  enforcement?: 'reserve' | 'check';

  /**
   * Tokens the call is expected to use, for the reservation and for the fallback when the model
   * reports no (or NaN) usage. Missing fields use the default estimate.
   * Default: input = (prompt + tool definitions characters) / 4, rounded up, with 1,000 tokens
   * per file or image; output = the call's `maxOutputTokens`, else `defaultOutputTokens`.
   * @example estimate: ({ params }) => ({ inputTokens: countTokens(params.prompt) })
   */
  estimate?: (call: ModelCall) => TokenEstimate | Promise<TokenEstimate>;

  /**
   * The output-token estimate for calls that set no `maxOutputTokens`. Higher is safer against
   * overshooting a limit under concurrency, lower admits more concurrent calls.
   * Default `1024`.
   * @example defaultOutputTokens: 4096
   */
  defaultOutputTokens?: number;

  /**
   * Prices by model id; when the called model is listed, `values.costCents` is added to the
   * estimate and to the recorded event, so limits can cap spend. Unlisted models record tokens only.
   * Default: none.
   * @example prices: { 'gpt-4o-mini': { inputPerMillion: 0.15, outputPerMillion: 0.6, cachedInputPerMillion: 0.075 } }
   */
  prices?: PriceTable;

  /**
   * What a call that did not complete records: a stream the consumer aborted or that errored, or
   * a model call that threw. Exactly one event is recorded either way, never none.
   * - `'observed'` (default): the estimated input tokens plus the output seen so far (streamed
   *   characters / 4); `dimensions.usage_source` is `'observed'`.
   * - `'estimate'`: the full estimate (input plus `maxOutputTokens`); `usage_source` is `'estimate'`.
   * Usage the model already reported (a `finish` part before the error) is always used as is.
   * @example failedCallUsage: 'estimate'
   */
  failedCallUsage?: 'observed' | 'estimate';

  /**
   * How long a reservation holds its estimate if the call never ends (a crashed process).
   * Default: the engine's `defaultTtlMs` (10 minutes).
   * @example ttlMs: 120_000
   */
  ttlMs?: number;

  /**
   * Called when recording a finished call fails (the store is down). Without it the error reaches
   * the caller: `generateText` rejects and a stream errors at its end; when nobody is left to
   * receive it (an aborted stream) it is logged with `console.error`.
   * Default: none.
   * @example onRecordError: (error, event) => deadLetterQueue.push(event)
   */
  onRecordError?: (error: unknown, event: FailedRecord) => void;

  /**
   * The middleware specification version to declare. `'v4'` for AI SDK 7, `'v3'` for AI SDK 6
   * (its `wrapLanguageModel` types require it). The behaviour is the same.
   * Default `'v4'`.
   * @example specificationVersion: 'v3'
   */
  specificationVersion?: 'v3' | 'v4';
}
