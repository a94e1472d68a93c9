import { TollgateError } from '@tollgate/core';
import { generateText, simulateReadableStream, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { tollgateMiddleware } from '../src/index.js';
import { engine, eventsOf, sleep, textChunks, textResult, usage } from './helpers.js';

// The bug this guards against is the one LiteLLM's proxy has (issues 34732, 27639, 28247):
// check-then-call lets every concurrent request through while the counter still shows room.
describe('concurrent calls racing for the last tokens', () => {
  it('lets exactly as many generate calls run as fit; the rest are denied before the model runs', async () => {
    const tollgate = engine({ tokenLimit: 1000 });
    const mock = new MockLanguageModelV4({
      doGenerate: async () => {
        // Every admitted call is still in flight while the others decide.
        await sleep(20);
        return textResult('ok', usage(10, 90));
      },
    });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', estimate: () => ({ inputTokens: 10 }) }) });

    const results = await Promise.allSettled(Array.from({ length: 25 }, () => generateText({ model, prompt: 'Hello', maxOutputTokens: 90, maxRetries: 0 })));

    const ran = results.filter((r) => r.status === 'fulfilled');
    const denied = results.filter((r) => r.status === 'rejected');
    expect(ran).toHaveLength(10);
    expect(mock.doGenerateCalls).toHaveLength(10);
    expect(denied).toHaveLength(15);
    for (const d of denied) expect(TollgateError.isInstance(d.reason) && d.reason.code).toBe('limit_exceeded');
    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(10);
    const { limits } = await tollgate.limits.check({ customerId: 'cus_1' });
    expect(limits[0]).toMatchObject({ used: 1000, remaining: 0 });
  });

  it('holds the estimate of an unfinished stream, so concurrent streams cannot overshoot either', async () => {
    const tollgate = engine({ tokenLimit: 500 });
    const mock = new MockLanguageModelV4({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textChunks(['a', 'b', 'c'], usage(10, 90)), chunkDelayInMs: 5 }) }),
    });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', estimate: () => ({ inputTokens: 10 }) }) });
    const denials: unknown[] = [];

    await Promise.all(
      Array.from({ length: 12 }, () =>
        streamText({ model, prompt: 'Hello', maxOutputTokens: 90, maxRetries: 0, onError: ({ error }) => void denials.push(error) }).consumeStream(),
      ),
    );

    expect(mock.doStreamCalls).toHaveLength(5);
    expect(denials).toHaveLength(7);
    expect(denials.every((e) => TollgateError.isInstance(e) && e.code === 'limit_exceeded')).toBe(true);
    expect(await eventsOf(tollgate, 'cus_1')).toHaveLength(5);
  });

  it('keeps customers apart: one customer at their limit does not deny another', async () => {
    const tollgate = engine({ tokenLimit: 200 });
    const mock = new MockLanguageModelV4({ doGenerate: async () => textResult('ok', usage(10, 90)) });
    const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { estimate: () => ({ inputTokens: 10 }) }) });
    const call = (customerId: string) => generateText({ model, prompt: 'Hi', maxOutputTokens: 90, maxRetries: 0, providerOptions: { tollgate: { customerId } } });

    const ran = async (customerId: string) => (await Promise.allSettled([call(customerId), call(customerId), call(customerId)])).filter((o) => o.status === 'fulfilled').length;

    expect(await Promise.all([ran('a'), ran('b')])).toEqual([2, 2]);
  });
});
