import { describe, expect, it } from 'vitest';
import { costCents, estimateInputTokens, readUsage } from '../src/usage.js';

describe('readUsage', () => {
  it('reads the nested V3/V4 shape (AI SDK 6 and 7)', () => {
    expect(
      readUsage({ inputTokens: { total: 100, noCache: 60, cacheRead: 40, cacheWrite: 0 }, outputTokens: { total: 30, text: 20, reasoning: 10 } }),
    ).toEqual({ inputTokens: 100, outputTokens: 30, cachedInputTokens: 40, reasoningTokens: 10, totalTokens: undefined });
  });

  it('reads the flat V2 shape (AI SDK 5 providers)', () => {
    expect(readUsage({ inputTokens: 100, outputTokens: 30, totalTokens: 130, cachedInputTokens: 40, reasoningTokens: 10 })).toEqual({
      inputTokens: 100,
      outputTokens: 30,
      totalTokens: 130,
      cachedInputTokens: 40,
      reasoningTokens: 10,
    });
  });

  it('drops NaN, Infinity, negative and non-number counts', () => {
    expect(readUsage({ inputTokens: { total: Number.NaN }, outputTokens: { total: -3, reasoning: '7' } })).toEqual({
      inputTokens: undefined,
      outputTokens: undefined,
      cachedInputTokens: undefined,
      reasoningTokens: undefined,
      totalTokens: undefined,
    });
    expect(readUsage(undefined)).toEqual({});
    expect(readUsage(null)).toEqual({});
  });
});

describe('estimateInputTokens', () => {
  it('counts system text, message parts, tool calls and results, and tool definitions at 4 characters a token', () => {
    const tokens = estimateInputTokens({
      prompt: [
        { role: 'system', content: 'x'.repeat(40) },
        { role: 'user', content: [{ type: 'text', text: 'y'.repeat(40) }] },
        { role: 'assistant', content: [{ type: 'tool-call', toolCallId: 'c', toolName: 't', input: { q: 'z'.repeat(33) } }] },
        { role: 'tool', content: [{ type: 'tool-result', toolCallId: 'c', toolName: 't', output: { type: 'text', value: 'w'.repeat(40) } }] },
      ],
      tools: [{ type: 'function', name: 'search', inputSchema: { type: 'object' } }],
    });
    const toolDefinition = JSON.stringify({ type: 'function', name: 'search', inputSchema: { type: 'object' } }).length;
    expect(tokens).toBe(Math.ceil((40 + 40 + 40 + 40 + toolDefinition) / 4));
  });

  it('counts a flat 1,000 tokens per file, whatever its encoded size', () => {
    const image = { type: 'file', mediaType: 'image/png', data: { type: 'data', data: 'A'.repeat(100_000) } };
    expect(estimateInputTokens({ prompt: [{ role: 'user', content: [image, { type: 'text', text: 'abcd' }] }] })).toBe(1001);
  });
});

describe('costCents', () => {
  it('prices uncached input, cached input and output separately', () => {
    // 600k × $3 + 400k × $0.30 + 100k × $15 = $1.80 + $0.12 + $1.50 = $3.42
    expect(costCents({ inputPerMillion: 3, cachedInputPerMillion: 0.3, outputPerMillion: 15 }, 1_000_000, 100_000, 400_000)).toBe(342);
  });

  it('prices cached input at the input price when the table has no cached price', () => {
    expect(costCents({ inputPerMillion: 1, outputPerMillion: 2 }, 1_000_000, 0, 500_000)).toBe(100);
  });
});
