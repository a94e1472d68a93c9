// Compile-only: how an application's TypeScript sees @tollgate/ai. `npm run typecheck` checks it
// twice, against AI SDK 7 (tsconfig.json) and AI SDK 6 (tsconfig.ai6.json maps 'ai' to ai@6).
import { createTollgate } from '@tollgate/core';
import { generateText, Output, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { z } from 'zod';
import { meteredAI, tollgateMiddleware } from '../../src/index.js';

declare const providerModel: Parameters<typeof wrapLanguageModel>[0]['model'];
const tollgate = createTollgate();

export async function middlewareWithTheSdk() {
  const model = wrapLanguageModel({ model: providerModel, middleware: tollgateMiddleware(tollgate, { customerId: () => 'cus_1' }) });
  const { text } = await generateText({ model, prompt: 'Hi', providerOptions: { tollgate: { customerId: 'cus_1' } } });
  return text.toUpperCase();
}

export async function helperKeepsTheSdkTypes() {
  const ai = meteredAI(tollgate, { model: providerModel, prices: { m: { inputPerMillion: 1, outputPerMillion: 2 } } });

  const withTools = await ai.generateText({
    customerId: 'cus_1',
    prompt: 'What is 2 + 3?',
    tools: { add: tool({ inputSchema: z.object({ a: z.number(), b: z.number() }), execute: async ({ a, b }) => a + b }) },
    stopWhen: stepCountIs(3),
  });
  for (const call of withTools.toolCalls) {
    if (!call.dynamic) {
      const a: number = call.input.a;
      // @ts-expect-error the tool's input has no field c
      call.input.c;
      void a;
    }
  }

  const structured = await ai.generateText({ customerId: 'cus_1', prompt: 'Answer', output: Output.object({ schema: z.object({ answer: z.number() }) }) });
  const answer: number = structured.output.answer;

  const streamed = ai.streamText({ customerId: 'cus_1', prompt: 'Answer', output: Output.object({ schema: z.object({ answer: z.number() }) }) });
  const later: number = (await streamed.output).answer;
  const text: string = await ai.streamText({ customerId: 'cus_1', prompt: 'Hi' }).text;

  // @ts-expect-error the customer is required
  await ai.generateText({ prompt: 'Hi' });

  await generateText({ model: ai.model, prompt: 'Hi', providerOptions: { tollgate: { customerId: 'cus_1' } } });
  return { answer, later, text, streamText };
}
