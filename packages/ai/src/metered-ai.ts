import { TollgateError, type Dimensions, type Tollgate } from '@tollgate/core';
import {
  generateText,
  streamText,
  wrapLanguageModel,
  type AsyncIterableStream,
  type InferGenerateOutput,
  type InferStreamOutput,
  type OutputInterface,
  type ToolSet,
} from 'ai';
import { tollgateMiddleware } from './middleware.js';
import type { TollgateMiddlewareOptions } from './options.js';

/** What one metered call adds to the AI SDK's own options. */
export interface MeteredCallOptions {
  /**
   * The customer this call is for: checked before every model call and charged after.
   * @example customerId: session.orgId
   */
  customerId: string;
  /**
   * Extra dimensions for this call's events, merged over the helper's `dimensions`.
   * Default: none.
   * @example dimensions: { feature: 'summarise' }
   */
  dimensions?: Dimensions;
}

/** A language model instance (`openai('gpt-4o-mini')`, a mock, a wrapped model); not a model id string. */
export type LanguageModelInstance = Parameters<typeof wrapLanguageModel>[0]['model'];

export interface MeteredAIOptions extends TollgateMiddlewareOptions {
  /**
   * The model every call of this helper uses, wrapped once with {@link tollgateMiddleware}.
   * @example model: openai('gpt-4o-mini')
   */
  model: LanguageModelInstance;
}

// `typeof generateText<TOOLS>` resolves against the AI SDK the application installed (6 or 7),
// whose generic parameter lists differ after TOOLS; OUTPUT is therefore carried separately.
type GenerateTextOptions<TOOLS extends ToolSet> = Parameters<typeof generateText<TOOLS>>[0];
type StreamTextOptions<TOOLS extends ToolSet> = Parameters<typeof streamText<TOOLS>>[0];

/** `generateText` options without `model` (the helper's), plus {@link MeteredCallOptions}. */
export type MeteredGenerateTextOptions<TOOLS extends ToolSet, OUTPUT extends OutputInterface> = Omit<GenerateTextOptions<TOOLS>, 'model' | 'output'> &
  MeteredCallOptions & { output?: OUTPUT };

/** `streamText` options without `model` (the helper's), plus {@link MeteredCallOptions}. */
export type MeteredStreamTextOptions<TOOLS extends ToolSet, OUTPUT extends OutputInterface> = Omit<StreamTextOptions<TOOLS>, 'model' | 'output'> &
  MeteredCallOptions & { output?: OUTPUT };

export type MeteredGenerateTextResult<TOOLS extends ToolSet, OUTPUT extends OutputInterface> = Omit<Awaited<ReturnType<typeof generateText<TOOLS>>>, 'output'> & {
  readonly output: InferGenerateOutput<OUTPUT>;
};

export type MeteredStreamTextResult<TOOLS extends ToolSet, OUTPUT extends OutputInterface> = Omit<ReturnType<typeof streamText<TOOLS>>, 'output' | 'partialOutputStream'> & {
  readonly output: PromiseLike<InferGenerateOutput<OUTPUT>>;
  readonly partialOutputStream: AsyncIterableStream<InferStreamOutput<OUTPUT>>;
};

export interface MeteredAI {
  /**
   * The metered model, for any other AI SDK function (`generateObject`, agents, `embed` aside).
   * Name the customer per call with `providerOptions: { tollgate: { customerId } }`.
   */
  model: ReturnType<typeof wrapLanguageModel>;
  /**
   * The AI SDK's `generateText` on the metered model, for one customer. Every model call it makes
   * (each step of a tool loop) is checked before and recorded after.
   * Throws `TollgateError` `limit_exceeded` when the customer is over a limit.
   * @example const { text } = await ai.generateText({ customerId: 'cus_123', prompt: 'Hello' });
   */
  generateText<TOOLS extends ToolSet = {}, OUTPUT extends OutputInterface = OutputInterface<string, string>>(
    options: MeteredGenerateTextOptions<TOOLS, OUTPUT>,
  ): Promise<MeteredGenerateTextResult<TOOLS, OUTPUT>>;
  /**
   * The AI SDK's `streamText` on the metered model, for one customer. Returns at once, like
   * `streamText`; a denial arrives the way the AI SDK reports model errors (`onError`, an `error`
   * part, rejected `text`). Each model call is recorded when its stream ends, however it ends.
   * @example ai.streamText({ customerId: 'cus_123', prompt: 'Hello' }).toUIMessageStreamResponse()
   */
  streamText<TOOLS extends ToolSet = {}, OUTPUT extends OutputInterface = OutputInterface<string, string, never>>(
    options: MeteredStreamTextOptions<TOOLS, OUTPUT>,
  ): MeteredStreamTextResult<TOOLS, OUTPUT>;
}

/**
 * The fewest lines to a metered model: wraps `model` once with {@link tollgateMiddleware} and
 * gives `generateText` and `streamText` that take the customer as one more option.
 *
 * @example
 * const ai = meteredAI(tollgate, { model: openai('gpt-4o-mini') });
 * const { text } = await ai.generateText({ customerId: 'cus_123', prompt: 'Write a haiku' });
 */
export function meteredAI(tollgate: Tollgate, options: MeteredAIOptions): MeteredAI {
  const { model, ...middlewareOptions } = options ?? ({} as MeteredAIOptions);
  if (typeof model !== 'object' || model === null) {
    throw new TollgateError('invalid_request', "Invalid meteredAI options: model must be a language model instance such as openai('gpt-4o-mini'); model id strings cannot be wrapped.", {
      issues: [{ path: 'model', message: 'expected a language model instance' }],
    });
  }
  const metered = wrapLanguageModel({ model, middleware: tollgateMiddleware(tollgate, middlewareOptions) });

  const callOptions = (options: MeteredCallOptions & { providerOptions?: Record<string, unknown> }) => {
    const { customerId, dimensions, providerOptions, ...rest } = options;
    const own = dimensions === undefined ? { customerId } : { customerId, dimensions };
    return { ...rest, model: metered, providerOptions: { ...providerOptions, tollgate: own } };
  };

  return {
    model: metered,
    generateText: ((o: MeteredCallOptions) => generateText(callOptions(o) as never)) as unknown as MeteredAI['generateText'],
    streamText: ((o: MeteredCallOptions) => streamText(callOptions(o) as never)) as unknown as MeteredAI['streamText'],
  };
}
