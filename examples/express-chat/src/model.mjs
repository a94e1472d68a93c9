// The model: OpenAI when OPENAI_API_KEY is set, otherwise a deterministic local model so the
// app runs offline. Replace this file with your provider of choice.
import { MockLanguageModelV4 } from 'ai/test';
import { simulateReadableStream } from 'ai';

export async function chatModel() {
  if (process.env.OPENAI_API_KEY) {
    const { openai } = await import('@ai-sdk/openai');
    return openai(process.env.OPENAI_MODEL ?? 'gpt-4o-mini');
  }
  return localModel();
}

/** Echoes the last user message; reports token usage like a real model (about 4 characters a token). */
function localModel() {
  const answer = (prompt) => {
    const last = [...prompt].reverse().find((m) => m.role === 'user');
    const text = (last?.content ?? []).filter((p) => p.type === 'text').map((p) => p.text).join(' ');
    return `You said: "${text}". This reply comes from the local model; set OPENAI_API_KEY to talk to a real one.`;
  };
  const tokens = (s) => Math.max(1, Math.ceil(s.length / 4));
  const usage = (prompt, reply) => {
    const input = tokens(JSON.stringify(prompt));
    const output = tokens(reply);
    return { inputTokens: { total: input, noCache: input, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: output, text: output, reasoning: 0 } };
  };
  return new MockLanguageModelV4({
    provider: 'local',
    modelId: 'echo-1',
    doGenerate: async ({ prompt }) => {
      const text = answer(prompt);
      return { content: [{ type: 'text', text }], finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(prompt, text), warnings: [] };
    },
    doStream: async ({ prompt }) => {
      const text = answer(prompt);
      const words = text.split(/(?<= )/);
      return {
        stream: simulateReadableStream({
          chunkDelayInMs: 5,
          chunks: [
            { type: 'stream-start', warnings: [] },
            { type: 'text-start', id: 't' },
            ...words.map((delta) => ({ type: 'text-delta', id: 't', delta })),
            { type: 'text-end', id: 't' },
            { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(prompt, text) },
          ],
        }),
      };
    },
  });
}
