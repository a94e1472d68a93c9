import { generateText, simulateReadableStream, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { MockLanguageModelV3, MockLanguageModelV4 } from 'ai/test';
import {
  generateText as generateText6,
  simulateReadableStream as simulateReadableStream6,
  stepCountIs as stepCountIs6,
  streamText as streamText6,
  tool as tool6,
  wrapLanguageModel as wrapLanguageModel6,
} from 'ai6';
import type { LanguageModelMiddleware as LanguageModelMiddleware6 } from 'ai6';
import { MockLanguageModelV3 as MockLanguageModelV3of6 } from 'ai6/test';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { tollgateMiddleware } from '../src/index.js';
import { engine, eventsOf, textChunks, textResult, usage } from './helpers.js';

const weatherCall = (id: string, city: string) => ({
  content: [{ type: 'tool-call' as const, toolCallId: id, toolName: 'weather', input: JSON.stringify({ city }) }],
  finishReason: { unified: 'tool-calls' as const, raw: 'tool_calls' },
  usage: usage(50, 15),
  warnings: [],
});

describe('AI SDK 7 with a V3 (AI SDK 6 era) provider model', () => {
  it('meters doGenerate of a MockLanguageModelV3', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV3({ modelId: 'v3-model', doGenerate: textResult('from v3', usage(21, 8, { cacheRead: 5, reasoning: 2 })) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    const { text } = await generateText({ model, prompt: 'Hello' });

    expect(text).toBe('from v3');
    expect(mock.doGenerateCalls).toHaveLength(1);
    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values).toMatchObject({ inputTokens: 21, outputTokens: 8, totalTokens: 29, cachedInputTokens: 5, reasoningTokens: 2 });
    expect(event.dimensions).toMatchObject({ model: 'v3-model', usage_source: 'provider' });
  });

  it('meters doStream of a MockLanguageModelV3', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV3({ doStream: async () => ({ stream: simulateReadableStream({ chunks: textChunks(['v3 ', 'stream'], usage(13, 4)) }) }) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    const result = streamText({ model, prompt: 'Hello' });

    expect(await result.text).toBe('v3 stream');
    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values).toMatchObject({ inputTokens: 13, outputTokens: 4, totalTokens: 17 });
  });

  it('denies before a V3 model runs', async () => {
    const tollgate = engine({ tokenLimit: 50 });
    const mock = new MockLanguageModelV3({ doGenerate: textResult('never') });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    await expect(generateText({ model, prompt: 'Hello', maxOutputTokens: 100 })).rejects.toMatchObject({ code: 'limit_exceeded' });
    expect(mock.doGenerateCalls).toHaveLength(0);
  });
});

describe('AI SDK 6 (its own wrapLanguageModel, v3 middleware, MockLanguageModelV3)', () => {
  // This repository types 'ai' as AI SDK 7; in an AI SDK 6 app 'ai' is 6 and no cast is needed
  // (test/types/ai6.ts is type-checked that way by `npm run typecheck`).
  const middleware6 = (...args: Parameters<typeof tollgateMiddleware>) => tollgateMiddleware(...args) as unknown as LanguageModelMiddleware6;

  it('meters generateText', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV3of6({ doGenerate: textResult('from ai 6', usage(30, 12, { cacheRead: 10 })) });
    const model = wrapLanguageModel6({ model: mock, middleware: middleware6(tollgate, { customerId: 'cus_6', specificationVersion: 'v3' }) });

    const { text } = await generateText6({ model, prompt: 'Hello' });

    expect(text).toBe('from ai 6');
    const [event] = await eventsOf(tollgate, 'cus_6');
    expect(event.values).toMatchObject({ inputTokens: 30, outputTokens: 12, totalTokens: 42, cachedInputTokens: 10 });
  });

  it('meters streamText and strips providerOptions.tollgate before the model sees the call', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV3of6({ doStream: async () => ({ stream: simulateReadableStream6({ chunks: textChunks(['six'], usage(3, 1)) }) }) });
    const model = wrapLanguageModel6({ model: mock, middleware: middleware6(tollgate, { specificationVersion: 'v3' }) });

    const result = streamText6({ model, prompt: 'Hello', providerOptions: { tollgate: { customerId: 'cus_6' } } });

    expect(await result.text).toBe('six');
    expect(mock.doStreamCalls[0].providerOptions).toBeUndefined();
    const [event] = await eventsOf(tollgate, 'cus_6');
    expect(event.values).toMatchObject({ inputTokens: 3, outputTokens: 1 });
  });

  it('denies before the model runs', async () => {
    const tollgate = engine({ tokenLimit: 50 });
    const mock = new MockLanguageModelV3of6({ doGenerate: textResult('never') });
    const model = wrapLanguageModel6({ model: mock, middleware: middleware6(tollgate, { customerId: 'cus_6', specificationVersion: 'v3' }) });

    await expect(generateText6({ model, prompt: 'Hello', maxOutputTokens: 100 })).rejects.toMatchObject({ code: 'limit_exceeded' });
    expect(mock.doGenerateCalls).toHaveLength(0);
  });

  it('records each model call of a multi-step tool loop', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV3of6({ doGenerate: [weatherCall('c1', 'Paris'), textResult('It is 21 °C in Paris.', usage(80, 12))] });
    const model = wrapLanguageModel6({ model: mock, middleware: middleware6(tollgate, { customerId: 'cus_6', specificationVersion: 'v3' }) });

    const result = await generateText6({
      model,
      prompt: 'Weather in Paris?',
      tools: { weather: tool6({ inputSchema: z.object({ city: z.string() }), execute: async ({ city }) => ({ city, celsius: 21 }) }) },
      stopWhen: stepCountIs6(5),
    });

    expect(result.steps).toHaveLength(2);
    const events = await eventsOf(tollgate, 'cus_6');
    expect(events.map((e) => e.values.totalTokens)).toEqual([65, 92]);
  });
});

describe('multi-step tool calling on AI SDK 7', () => {
  const tools = { weather: tool({ inputSchema: z.object({ city: z.string() }), execute: async ({ city }: { city: string }) => ({ city, celsius: 21 }) }) };

  it('records one event per model call of generateText, each with its own usage', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({
      doGenerate: [weatherCall('c1', 'Paris'), weatherCall('c2', 'Oslo'), textResult('Paris 21 °C, Oslo 21 °C.', usage(120, 14))],
    });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    const result = await generateText({ model, prompt: 'Weather in Paris and Oslo?', tools, stopWhen: stepCountIs(5) });

    expect(result.steps).toHaveLength(3);
    expect(mock.doGenerateCalls).toHaveLength(3);
    const events = await eventsOf(tollgate, 'cus_1');
    expect(events.map((e) => e.values.totalTokens)).toEqual([65, 65, 134]);
    expect(events.map((e) => e.properties?.finishReason)).toEqual(['tool-calls', 'tool-calls', 'stop']);
    expect(new Set(events.map((e) => e.idempotencyKey)).size).toBe(3);
  });

  it('stops the tool loop with limit_exceeded when a later step no longer fits', async () => {
    const tollgate = engine({ tokenLimit: 150 });
    const mock = new MockLanguageModelV4({ doGenerate: [weatherCall('c1', 'Paris'), weatherCall('c2', 'Oslo'), textResult('never')] });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', estimate: () => ({ inputTokens: 50, outputTokens: 15 }) }) });

    const error = await generateText({ model, prompt: 'Weather?', tools, stopWhen: stepCountIs(5) }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'limit_exceeded' });
    // 65 + 65 used; a third call estimated at 65 would reach 195 > 150.
    expect(mock.doGenerateCalls).toHaveLength(2);
    expect(await eventsOf(tollgate, 'cus_1')).toHaveLength(2);
  });

  it('records each model call of a multi-step streamText', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const toolStep = [
      { type: 'stream-start', warnings: [] },
      { type: 'tool-input-start', id: 'c1', toolName: 'weather' },
      { type: 'tool-input-delta', id: 'c1', delta: '{"city":"Paris"}' },
      { type: 'tool-input-end', id: 'c1' },
      { type: 'tool-call', toolCallId: 'c1', toolName: 'weather', input: '{"city":"Paris"}' },
      { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage: usage(40, 9) },
    ] as never[];
    const streams = [toolStep, textChunks(['21 °C'], usage(70, 5))];
    const mock = new MockLanguageModelV4({ doStream: async () => ({ stream: simulateReadableStream({ chunks: streams.shift()! }) }) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    const result = streamText({ model, prompt: 'Weather in Paris?', tools, stopWhen: stepCountIs(5) });

    expect(await result.text).toBe('21 °C');
    const events = await eventsOf(tollgate, 'cus_1');
    expect(events.map((e) => [e.values.totalTokens, e.properties?.finishReason])).toEqual([[49, 'tool-calls'], [75, 'stop']]);
  });
});

describe('finish reasons', () => {
  it('records the unified finish reason of a V3/V4 result', async () => {
    const tollgate = engine();
    const mock = new MockLanguageModelV4({ doGenerate: { ...textResult('x'), finishReason: { unified: 'length', raw: 'max_tokens' } } });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    await generateText({ model, prompt: 'Hello' });

    expect((await eventsOf(tollgate, 'cus_1'))[0].properties).toEqual({ finishReason: 'length' });
  });
});
