import { TollgateError } from '@tollgate/core';
import { generateText, Output, simulateReadableStream, stepCountIs, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { meteredAI } from '../src/index.js';
import { engine, eventsOf, textChunks, textResult, usage } from './helpers.js';

describe('meteredAI', () => {
  it('generateText: one call names the customer and is checked and recorded', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({ modelId: 'gpt-test', doGenerate: textResult('Hello back', usage(8, 3)) });
    const ai = meteredAI(tollgate, { model: mock, prices: { 'gpt-test': { inputPerMillion: 1_000, outputPerMillion: 2_000 } } });

    const { text, usage: reported } = await ai.generateText({ customerId: 'cus_1', prompt: 'Hello', providerOptions: { mock: { seed: 1 } } });

    expect(text).toBe('Hello back');
    expect(reported.totalTokens).toBe(11);
    expect(mock.doGenerateCalls[0].providerOptions).toEqual({ mock: { seed: 1 } });
    const [event] = await eventsOf(tollgate, 'cus_1');
    // 8 × $1000/M + 3 × $2000/M = $0.014 = 1.4 cents
    expect(event.values).toMatchObject({ inputTokens: 8, outputTokens: 3, costCents: 1.4 });
  });

  it('streamText: records when the stream finishes, with per-call dimensions', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({ doStream: async () => ({ stream: simulateReadableStream({ chunks: textChunks(['str', 'eam'], usage(6, 2)) }) }) });
    const ai = meteredAI(tollgate, { model: mock, dimensions: { app: 'web' } });

    const result = ai.streamText({ customerId: 'cus_1', prompt: 'Hello', dimensions: { feature: 'chat' } });

    expect(await result.text).toBe('stream');
    const [event] = await eventsOf(tollgate, 'cus_1');
    expect(event.dimensions).toMatchObject({ app: 'web', feature: 'chat', model: 'mock-model-id' });
    expect(event.values.totalTokens).toBe(8);
  });

  it('generateText rejects with limit_exceeded and the model is not called', async () => {
    const tollgate = engine({ tokenLimit: 100 });
    await tollgate.events.record({ customerId: 'cus_1', eventType: 'llm.completion', values: { totalTokens: 95 } });
    const mock = new MockLanguageModelV4({ doGenerate: textResult('never') });
    const ai = meteredAI(tollgate, { model: mock });

    const error = await ai.generateText({ customerId: 'cus_1', prompt: 'Hello', maxOutputTokens: 20 }).catch((e: unknown) => e);

    expect(TollgateError.isInstance(error) && error.code).toBe('limit_exceeded');
    expect(mock.doGenerateCalls).toHaveLength(0);
  });

  it('runs a typed tool loop and records every step', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({
      doGenerate: [
        { content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'add', input: '{"a":2,"b":3}' }], finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage: usage(30, 10), warnings: [] },
        textResult('5', usage(45, 1)),
      ],
    });
    const ai = meteredAI(tollgate, { model: mock });

    const result = await ai.generateText({
      customerId: 'cus_1',
      prompt: 'What is 2 + 3?',
      tools: { add: tool({ inputSchema: z.object({ a: z.number(), b: z.number() }), execute: async ({ a, b }) => a + b }) },
      stopWhen: stepCountIs(3),
    });

    const firstCall = result.steps[0].toolCalls[0];
    expect(firstCall.dynamic ? undefined : firstCall.input).toEqual({ a: 2, b: 3 });
    expect((await eventsOf(tollgate, 'cus_1')).map((e) => e.values.totalTokens)).toEqual([40, 46]);
  });

  it('keeps structured output typed and working', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({ doGenerate: textResult('{"answer":42}', usage(5, 5)) });
    const ai = meteredAI(tollgate, { model: mock });

    const { output } = await ai.generateText({ customerId: 'cus_1', prompt: 'Answer', output: Output.object({ schema: z.object({ answer: z.number() }) }) });

    const answer: number = output.answer;
    expect(answer).toBe(42);
  });

  it('exposes the metered model for other AI SDK calls, customer per call', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV4({ doGenerate: textResult('ok') });
    const ai = meteredAI(tollgate, { model: mock });

    await generateText({ model: ai.model, prompt: 'Hello', providerOptions: { tollgate: { customerId: 'cus_9' } } });

    expect(await eventsOf(tollgate, 'cus_9')).toHaveLength(1);
  });

  it('rejects a model id string with invalid_request', () => {
    const tollgate = engine();
    expect(() => meteredAI(tollgate, { model: 'openai/gpt-4o' as never })).toThrow(expect.objectContaining({ code: 'invalid_request' }));
  });
});
