import { generateText, simulateReadableStream, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it, vi } from 'vitest';
import { tollgateMiddleware, type TollgateMiddlewareOptions } from '../src/index.js';
import { engine, eventsOf, sleep, textChunks, textResult, usage } from './helpers.js';

function streaming(chunks: never[], chunkDelayInMs = 5) {
  return new MockLanguageModelV4({ doStream: async () => ({ stream: simulateReadableStream({ chunks, chunkDelayInMs }) }) });
}

function metered(mock: MockLanguageModelV4, options: TollgateMiddlewareOptions = {}) {
  const tollgate = engine({ tokenLimit: 100_000 });
  const model = wrapLanguageModel({ model: mock, middleware: tollgateMiddleware(tollgate, { customerId: 'cus_1', ...options }) });
  return { tollgate, model };
}

/** A stream that sends `deltas`, then fails the way a dropped provider connection does. */
function failingStream(deltas: string[]) {
  const parts = textChunks(deltas, undefined, { finish: false }).slice(0, 2 + deltas.length);
  return new ReadableStream({
    async start(controller) {
      for (const part of parts) controller.enqueue(part);
      await sleep(5);
      controller.error(new Error('socket hang up'));
    },
  });
}

describe('abort mid-stream', () => {
  it('records exactly one event with the output seen so far when the AbortController fires', async () => {
    const deltas = Array.from({ length: 20 }, () => 'abcdefgh');
    const { tollgate, model } = metered(streaming(textChunks(deltas, usage(50, 400))), { estimate: () => ({ inputTokens: 50 }) });
    const controller = new AbortController();

    const result = streamText({ model, prompt: 'Hello', maxOutputTokens: 500, abortSignal: controller.signal });
    let seen = 0;
    for await (const _ of result.textStream) {
      if (++seen === 3) controller.abort();
    }
    await sleep(20);

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event.dimensions).toMatchObject({ outcome: 'aborted', usage_source: 'observed' });
    expect(event.values.inputTokens).toBe(50);
    // Three or four 8-character deltas had been pulled from the model: 6–8 tokens, far below the 500 estimate.
    expect(event.values.outputTokens).toBeGreaterThanOrEqual(6);
    expect(event.values.outputTokens).toBeLessThanOrEqual(8);
    expect(event.values.totalTokens).toBe(50 + event.values.outputTokens);
  });

  it("records the full estimate instead with failedCallUsage: 'estimate'", async () => {
    const deltas = Array.from({ length: 20 }, () => 'abcdefgh');
    const { tollgate, model } = metered(streaming(textChunks(deltas)), { estimate: () => ({ inputTokens: 50 }), failedCallUsage: 'estimate' });
    const controller = new AbortController();

    const result = streamText({ model, prompt: 'Hello', maxOutputTokens: 500, abortSignal: controller.signal });
    let seen = 0;
    for await (const _ of result.textStream) if (++seen === 2) controller.abort();
    await sleep(20);

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].values).toMatchObject({ inputTokens: 50, outputTokens: 500, totalTokens: 550 });
    expect(events[0].dimensions).toMatchObject({ outcome: 'aborted', usage_source: 'estimate' });
  });

  it('records the full usage when the consumer stops reading without aborting: the AI SDK drains the model stream', async () => {
    const { tollgate, model } = metered(streaming(textChunks(['aaaa', 'bbbb', 'cccc', 'dddd'], usage(9, 4)), 1));

    const result = streamText({ model, prompt: 'Hello' });
    const reader = result.textStream.getReader();
    await reader.read();
    await reader.cancel();
    await vi.waitFor(async () => expect(await eventsOf(tollgate, 'cus_1')).toHaveLength(1));

    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values).toMatchObject({ inputTokens: 9, outputTokens: 4 });
    expect(event.dimensions).toMatchObject({ outcome: 'completed', usage_source: 'provider' });
  });

  it('records once, with the output seen so far, when the model stream itself is cancelled', async () => {
    const { tollgate, model } = metered(streaming(textChunks(['aaaa', 'bbbb', 'cccc', 'dddd']), 1), { estimate: () => ({ inputTokens: 9 }) });
    const { stream } = await model.doStream({ prompt: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] } as never);
    const reader = stream.getReader();
    let deltas = 0;
    while (deltas < 2) if ((await reader.read()).value?.type === 'text-delta') deltas++;
    await reader.cancel('client went away');

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].dimensions).toMatchObject({ outcome: 'aborted', usage_source: 'observed' });
    expect(events[0].values).toMatchObject({ inputTokens: 9, outputTokens: 2 });
  });

  it('uses the reported usage when the stream is cancelled after its finish part', async () => {
    const { tollgate, model } = metered(streaming(textChunks(['abc'], usage(11, 3)), 0));
    const mockStream = await model.doStream({ prompt: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] } as never);
    const reader = mockStream.stream.getReader();
    for (;;) {
      const { value } = await reader.read();
      if (value?.type === 'finish') break;
    }
    await reader.cancel();

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].values).toMatchObject({ inputTokens: 11, outputTokens: 3 });
    expect(events[0].dimensions).toMatchObject({ outcome: 'aborted', usage_source: 'provider' });
  });

  it('records the aborted generate call once', async () => {
    const mock = new MockLanguageModelV4({
      doGenerate: async ({ abortSignal }) => {
        await new Promise((_, reject) => abortSignal?.addEventListener('abort', () => reject(abortSignal.reason)));
        return textResult('never');
      },
    });
    const { tollgate, model } = metered(mock, { estimate: () => ({ inputTokens: 4 }) });
    const controller = new AbortController();

    const pending = generateText({ model, prompt: 'Hello', maxOutputTokens: 10, abortSignal: controller.signal, maxRetries: 0 });
    await sleep(5);
    controller.abort();
    await expect(pending).rejects.toThrow();

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].dimensions).toMatchObject({ outcome: 'aborted', usage_source: 'observed' });
    expect(events[0].values).toMatchObject({ inputTokens: 4, outputTokens: 0 });
  });
});

describe('a stream that errors', () => {
  it('records exactly one event with what was streamed before the error, and the error reaches the consumer', async () => {
    const mock = new MockLanguageModelV4({ doStream: async () => ({ stream: failingStream(['abcd', 'efgh', 'ijkl']) }) });
    const { tollgate, model } = metered(mock, { estimate: () => ({ inputTokens: 30 }) });

    const result = streamText({ model, prompt: 'Hello', maxOutputTokens: 1000 });
    await result.consumeStream();

    await expect(result.text).rejects.toThrow('socket hang up');
    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].dimensions).toMatchObject({ outcome: 'error', usage_source: 'observed' });
    expect(events[0].values).toMatchObject({ inputTokens: 30, outputTokens: 3, totalTokens: 33 });
    expect(events[0].properties?.error).toContain('socket hang up');
  });

  it('records an error part in the stream as an errored call', async () => {
    const parts = [...textChunks(['abcd'], undefined, { finish: false }), { type: 'error', error: new Error('overloaded') }] as never[];
    const { tollgate, model } = metered(streaming(parts, 0), { estimate: () => ({ inputTokens: 2 }) });

    await streamText({ model, prompt: 'Hello', onError: () => {} }).consumeStream();

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].dimensions).toMatchObject({ outcome: 'error', usage_source: 'observed' });
    expect(events[0].values).toMatchObject({ inputTokens: 2, outputTokens: 1 });
  });

  it('records once when doStream itself throws', async () => {
    const mock = new MockLanguageModelV4({ doStream: async () => { throw new Error('401 Unauthorized'); } });
    const { tollgate, model } = metered(mock, { estimate: () => ({ inputTokens: 7 }) });

    await streamText({ model, prompt: 'Hello', onError: () => {} }).consumeStream();

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].dimensions).toMatchObject({ outcome: 'error' });
    expect(events[0].values).toMatchObject({ inputTokens: 7, outputTokens: 0 });
  });

  it('records once per attempt when doGenerate throws, and rethrows the model error', async () => {
    const mock = new MockLanguageModelV4({ doGenerate: async () => { throw new Error('model exploded'); } });
    const { tollgate, model } = metered(mock);

    await expect(generateText({ model, prompt: 'Hello', maxRetries: 0 })).rejects.toThrow('model exploded');

    const events = await eventsOf(tollgate, 'cus_1');
    expect(events).toHaveLength(1);
    expect(events[0].dimensions.outcome).toBe('error');
  });
});

describe('missing or NaN usage', () => {
  it('falls back to the estimate for NaN usage from doGenerate and marks the event', async () => {
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok', usage(Number.NaN, Number.NaN)) });
    const { tollgate, model } = metered(mock, { estimate: () => ({ inputTokens: 12 }) });

    await generateText({ model, prompt: 'Hello', maxOutputTokens: 64 });

    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values).toMatchObject({ inputTokens: 12, outputTokens: 64, totalTokens: 76, cachedInputTokens: 0, reasoningTokens: 0 });
    expect(event.dimensions.usage_source).toBe('estimate');
  });

  it('falls back per field: reported input, estimated output', async () => {
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok', usage(33, undefined)) });
    const { tollgate, model } = metered(mock);

    await generateText({ model, prompt: 'Hello', maxOutputTokens: 64 });

    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values).toMatchObject({ inputTokens: 33, outputTokens: 64, totalTokens: 97 });
    expect(event.dimensions.usage_source).toBe('estimate');
  });

  it('falls back to the estimate for a stream that ends without a finish part', async () => {
    const { tollgate, model } = metered(streaming(textChunks(['abcd'], undefined, { finish: false }), 0), { estimate: () => ({ inputTokens: 5, outputTokens: 15 }) });

    await streamText({ model, prompt: 'Hello' }).consumeStream();

    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values).toMatchObject({ inputTokens: 5, outputTokens: 15, totalTokens: 20 });
    expect(event.dimensions).toMatchObject({ usage_source: 'estimate', outcome: 'completed' });
  });

  it('falls back for negative and Infinity token counts in a finish part', async () => {
    const { tollgate, model } = metered(streaming(textChunks(['abcd'], usage(-1, Number.POSITIVE_INFINITY)), 0), { estimate: () => ({ inputTokens: 5, outputTokens: 15 }) });

    await streamText({ model, prompt: 'Hello' }).consumeStream();

    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.values).toMatchObject({ inputTokens: 5, outputTokens: 15 });
    expect(event.dimensions.usage_source).toBe('estimate');
  });
});

describe('recording failures', () => {
  it('hands a failed record to onRecordError and still returns the model output', async () => {
    const mock = new MockLanguageModelV4({ doGenerate: textResult('served') });
    const onRecordError = vi.fn();
    const { tollgate, model } = metered(mock, { onRecordError });
    const reserve = tollgate.reserve.bind(tollgate);
    vi.spyOn(tollgate, 'reserve').mockImplementation(async (input) => {
      const reservation = await reserve(input);
      return { ...reservation, commit: async () => { throw new Error('store down'); } };
    });

    const { text } = await generateText({ model, prompt: 'Hello' });

    expect(text).toBe('served');
    expect(onRecordError).toHaveBeenCalledTimes(1);
    expect(onRecordError.mock.calls[0][1]).toMatchObject({ customerId: 'cus_1', eventType: 'llm.completion', values: { inputTokens: 10, outputTokens: 20 } });
  });

  it('rejects generateText when recording fails and no onRecordError is set', async () => {
    const mock = new MockLanguageModelV4({ doGenerate: textResult('served') });
    const { tollgate, model } = metered(mock);
    const reserve = tollgate.reserve.bind(tollgate);
    vi.spyOn(tollgate, 'reserve').mockImplementation(async (input) => ({ ...(await reserve(input)), commit: async () => { throw new Error('store down'); } }));

    await expect(generateText({ model, prompt: 'Hello', maxRetries: 0 })).rejects.toThrow('store down');
  });
});
