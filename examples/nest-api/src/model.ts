// The model: OpenAI when OPENAI_API_KEY is set, otherwise a deterministic local model so the
// app runs offline. Replace this file with your provider of choice.
import { openai } from '@ai-sdk/openai';
import type { LanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';

export type ChatModel = Exclude<LanguageModel, string>;

/** Injection token of the model `ChatService` calls. */
export const CHAT_MODEL = Symbol('CHAT_MODEL');

export function chatModel(env: NodeJS.ProcessEnv = process.env): ChatModel {
  if (env.OPENAI_API_KEY) return openai(env.OPENAI_MODEL ?? 'gpt-4o-mini');
  return localModel();
}

type Prompt = Parameters<MockLanguageModelV4['doGenerate']>[0]['prompt'];

/** Echoes the last user message; reports token usage like a real model (about 4 characters a token). */
function localModel(): ChatModel {
  const answer = (prompt: Prompt) => {
    const last = [...prompt].reverse().find((m) => m.role === 'user');
    const text = (last?.content ?? []).map((p) => (p.type === 'text' ? p.text : '')).join(' ');
    return `You said: "${text}". This reply comes from the local model; set OPENAI_API_KEY to talk to a real one.`;
  };
  const tokens = (s: string) => Math.max(1, Math.ceil(s.length / 4));
  return new MockLanguageModelV4({
    provider: 'local',
    modelId: 'echo-1',
    doGenerate: async ({ prompt }) => {
      const text = answer(prompt);
      const input = tokens(JSON.stringify(prompt));
      const output = tokens(text);
      return {
        content: [{ type: 'text', text }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage: { inputTokens: { total: input, noCache: input, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: output, text: output, reasoning: 0 } },
        warnings: [],
      };
    },
  });
}
