export { tollgateMiddleware } from './middleware.js';
export { meteredAI } from './metered-ai.js';
export type {
  LanguageModelInstance,
  MeteredAI,
  MeteredAIOptions,
  MeteredCallOptions,
  MeteredGenerateTextOptions,
  MeteredGenerateTextResult,
  MeteredStreamTextOptions,
  MeteredStreamTextResult,
} from './metered-ai.js';
export type {
  CallParams,
  FailedRecord,
  ModelCall,
  ModelPrice,
  PriceTable,
  TokenEstimate,
  TollgateMiddlewareOptions,
  TollgateProviderOptions,
} from './options.js';
