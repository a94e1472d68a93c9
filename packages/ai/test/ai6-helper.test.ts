import { simulateReadableStream } from 'ai6';
import { MockLanguageModelV3 } from 'ai6/test';
import { describe, expect, it, vi } from 'vitest';
import { meteredAI } from '../src/index.js';
import { engine, eventsOf, textChunks, textResult, usage } from './helpers.js';

// An AI SDK 6 application: the package's own `import ... from 'ai'` resolves to AI SDK 6.
vi.mock('ai', async () => await import('ai6'));

describe('meteredAI on AI SDK 6', () => {
  it('generateText and streamText are checked and recorded', async () => {
    const tollgate = engine({ tokenLimit: 10_000 });
    const mock = new MockLanguageModelV3({
      doGenerate: textResult('six', usage(4, 2)),
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textChunks(['s', 'ix'], usage(5, 3)) }) }),
    });
    const ai = meteredAI(tollgate, { model: mock as never, specificationVersion: 'v3' });
    // AI SDK 6's wrapLanguageModel made this model (AI SDK 7's would say 'v4').
    expect(ai.model.specificationVersion).toBe('v3');

    expect((await ai.generateText({ customerId: 'cus_6', prompt: 'Hi' })).text).toBe('six');
    expect(await ai.streamText({ customerId: 'cus_6', prompt: 'Hi' }).text).toBe('six');

    expect((await eventsOf(tollgate, 'cus_6')).map((e) => e.values.totalTokens)).toEqual([6, 8]);
  });

  it('denies before the model runs', async () => {
    const tollgate = engine({ tokenLimit: 10 });
    const mock = new MockLanguageModelV3({ doGenerate: textResult('never') });
    const ai = meteredAI(tollgate, { model: mock as never });

    await expect(ai.generateText({ customerId: 'cus_6', prompt: 'Hi', maxOutputTokens: 50 })).rejects.toMatchObject({ code: 'limit_exceeded' });
    expect(mock.doGenerateCalls).toHaveLength(0);
  });
});
