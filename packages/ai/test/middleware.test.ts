import { TollgateError } from '@tollgate/core';
import { generateText, simulateReadableStream, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it, vi } from 'vitest';
import { tollgateMiddleware } from '../src/index.js';
import { engine, eventsOf, textChunks, textResult, usage } from './helpers.js';


describe('generate', () => {
  it('records one llm.completion event with the reported tokens, latency, model and provider', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({ provider: 'acme.chat', modelId: 'acme-1', doGenerate: textResult('Hi there', usage(120, 30, { cacheRead: 100, reasoning: 12 })) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', dimensions: { feature: 'chat' } }) });

    const { text } = await generateText({ model, prompt: 'Hello' });

    expect(text).toBe('Hi there');
    const [event, ...more] = await eventsOf(tollgate, 'cus_1');
    expect(more).toHaveLength(0);
    expect(event.eventType).toBe('llm.completion');
    expect(event.values).toMatchObject({ inputTokens: 120, outputTokens: 30, totalTokens: 150, cachedInputTokens: 100, reasoningTokens: 12 });
    expect(event.values.latencyMs).toBeGreaterThanOrEqual(0);
    expect(event.values.costCents).toBeUndefined();
    expect(event.dimensions).toEqual({ feature: 'chat', model: 'acme-1', provider: 'acme.chat', usage_source: 'provider', outcome: 'completed' });
    expect(event.properties).toEqual({ finishReason: 'stop' });
    const status = await tollgate.limits.check({ customerId: 'cus_1' });
    expect(status.limits.find((l) => l.limitId === 'daily-tokens')?.used).toBe(150);
  });

  it('adds costCents from the price table, cached input at its own price', async () => {
    const tollgate = engine();
    const mock = new MockLanguageModelV4({ modelId: 'gpt-test', doGenerate: textResult('ok', usage(1_000_000, 200_000, { cacheRead: 400_000 })) });
    const model = wrapLanguageModel({
      model: mock,
      middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', prices: { 'gpt-test': { inputPerMillion: 2, cachedInputPerMillion: 0.5, outputPerMillion: 8 } } }),
    });

    await generateText({ model, prompt: 'Hello' });

    // 600k uncached × $2 + 400k cached × $0.50 + 200k × $8 = $1.20 + $0.20 + $1.60 = $3.00
    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values.costCents).toBeCloseTo(300, 6);
  });

  it('takes the customer from providerOptions.tollgate and does not pass it on to the provider', async () => {
    const tollgate = engine();
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok') });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'fallback' }) });

    await generateText({ model, prompt: 'Hello', providerOptions: { tollgate: { customerId: 'cus_call', dimensions: { route: '/x' } }, acme: { temperatureBoost: 1 } } });

    expect(mock.doGenerateCalls[0].providerOptions).toEqual({ acme: { temperatureBoost: 1 } });
    const [event] = await eventsOf(tollgate, 'cus_call');
    expect(event.dimensions.route).toBe('/x');
    expect(await eventsOf(tollgate, 'fallback')).toHaveLength(0);
  });

  it('resolves the customer from a function of the call', async () => {
    const tollgate = engine();
    const customerId = vi.fn(() => 'cus_fn');
    const mock = new MockLanguageModelV4({ modelId: 'm-7', doGenerate: textResult('ok') });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId }) });

    await generateText({ model, prompt: 'Hello' });

    expect(customerId).toHaveBeenCalledWith(expect.objectContaining({ type: 'generate', modelId: 'm-7', provider: 'mock-provider' }));
    expect(await eventsOf(tollgate, 'cus_fn')).toHaveLength(1);
  });

  it('refuses a call with no customer before the model runs, instead of letting it through unmetered', async () => {
    const tollgate = engine();
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok') });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate) });

    const error = await generateText({ model, prompt: 'Hello' }).catch((e: unknown) => e);

    expect(TollgateError.isInstance(error) && error.code).toBe('invalid_request');
    expect(mock.doGenerateCalls).toHaveLength(0);
  });

  it('records with enforcement: check too, once per call', async () => {
    const tollgate = engine({ tokenLimit: 1000 });
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok', usage(10, 20)) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', enforcement: 'check' }) });

    await generateText({ model, prompt: 'Hello', maxOutputTokens: 50 });
    await generateText({ model, prompt: 'Hello', maxOutputTokens: 50 });

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events.map((e) => e.values.totalTokens)).toEqual([30, 30]);
  });
});

describe('stream', () => {
  it('records once when the stream finishes, with the usage of its finish part', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({ doStream: async () => ({ stream: simulateReadableStream({ chunks: textChunks(['Hel', 'lo', '!'], usage(42, 7)), chunkDelayInMs: 1 }) }) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    const result = streamText({ model, prompt: 'Hello' });
    const parts: string[] = [];
    for await (const delta of result.textStream) parts.push(delta);

    expect(parts.join('')).toBe('Hello!');
    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].values).toMatchObject({ inputTokens: 42, outputTokens: 7, totalTokens: 49 });
    expect(events[0].dimensions).toMatchObject({ usage_source: 'provider', outcome: 'completed' });
  });
});

describe('denial', () => {
  async function nearlySpent(limit: number, used: number) {
    const tollgate = engine({ tokenLimit: limit });
    await tollgate.events.record({ customerId: 'cus_1', eventType: 'llm.completion', values: { totalTokens: used } });
    return tollgate;
  }

  it('throws limit_exceeded with the limit statuses and retryAfter before doGenerate runs', async () => {
    const tollgate = await nearlySpent(1000, 990);
    const mock = new MockLanguageModelV4({ doGenerate: textResult('never') });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });

    const error = await generateText({ model, prompt: 'Hello', maxOutputTokens: 100 }).catch((e: unknown) => e);

    expect(TollgateError.isInstance(error)).toBe(true);
    const denied = error as TollgateError;
    expect(denied.code).toBe('limit_exceeded');
    expect(denied.message).toContain('"Daily tokens" (990 of 1000 used this day)');
    expect(denied.message).toContain('estimated at 102 tokens');
    expect(denied.limits?.find((l) => l.limitId === 'daily-tokens')).toMatchObject({ used: 990, limit: 1000, allowed: false });
    expect(denied.retryAfter).toBeGreaterThan(0);
    expect(mock.doGenerateCalls).toHaveLength(0);
    expect(await eventsOf(tollgate, 'cus_1')).toHaveLength(1);
  });

  it('denies a stream before doStream runs; the error reaches streamText onError', async () => {
    const tollgate = await nearlySpent(1000, 990);
    const mock = new MockLanguageModelV4({ doStream: async () => ({ stream: simulateReadableStream({ chunks: textChunks(['never']) }) }) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });
    const errors: unknown[] = [];

    const result = streamText({ model, prompt: 'Hello', maxOutputTokens: 100, onError: ({ error }) => void errors.push(error) });
    await result.consumeStream();

    expect(errors).toHaveLength(1);
    expect(TollgateError.isInstance(errors[0]) && errors[0].code).toBe('limit_exceeded');
    expect(mock.doStreamCalls).toHaveLength(0);
    expect(await eventsOf(tollgate, 'cus_1')).toHaveLength(1);
  });

  it('denies when the estimate would not fit, and lets through a smaller call that does', async () => {
    const tollgate = await nearlySpent(1000, 900);
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok', usage(5, 40)) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', estimate: () => ({ inputTokens: 5 }) }) });

    await expect(generateText({ model, prompt: 'Hello', maxOutputTokens: 200 })).rejects.toMatchObject({ code: 'limit_exceeded' });
    await expect(generateText({ model, prompt: 'Hello', maxOutputTokens: 50 })).resolves.toMatchObject({ text: 'ok' });
    expect(mock.doGenerateCalls).toHaveLength(1);
  });

  it('holds the estimate from the prompt size and maxOutputTokens by default', async () => {
    const tollgate = engine({ tokenLimit: 1000 });
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok') });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1' }) });
    const reserve = vi.spyOn(tollgate, 'reserve');

    await generateText({ model, prompt: 'x'.repeat(400), maxOutputTokens: 300 });

    // 400 characters of prompt ≈ 100 tokens.
    expect(reserve.mock.calls[0][0].estimate).toEqual({ inputTokens: 100, outputTokens: 300, totalTokens: 400 });
  });

  it('rejects bad options with invalid_request when the middleware is made', () => {
    const tollgate = engine();
    expect(() => tollgateMiddleware(tollgate, { eventType: 'not valid!' })).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    expect(() => tollgateMiddleware(tollgate, { prices: { m: { inputPerMillion: Number.NaN, outputPerMillion: 1 } } })).toThrow(/prices\.m\.inputPerMillion/);
    expect(() => tollgateMiddleware(tollgate, { enforcement: 'maybe' as 'check' })).toThrow(/enforcement/);
  });
});
