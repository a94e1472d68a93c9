import { createTollgate, type CreateLimitInput, type Event, type Tollgate } from '@tollgate/core';
import { afterEach } from 'vitest';

const open: Tollgate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

/**
 * A real engine on the memory store with a `tokens` meter (sum of `values.totalTokens` of
 * `llm.completion` events) and, when given, a per-customer daily limit on it.
 */
export function engine(options: { tokenLimit?: number; limits?: CreateLimitInput[] } = {}): Tollgate {
  const limits: CreateLimitInput[] = [...(options.limits ?? [])];
  if (options.tokenLimit !== undefined) {
    limits.push({ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue: options.tokenLimit, period: 'day' });
  }
  const tollgate = createTollgate({
    meters: [
      { id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.totalTokens', eventFilter: { eventType: 'llm.completion' } },
      { id: 'spend', name: 'Spend', aggregation: 'sum', field: 'values.costCents', eventFilter: { eventType: 'llm.completion' } },
      { id: 'calls', name: 'Calls', aggregation: 'count', field: '*', eventFilter: { eventType: 'llm.completion' } },
    ],
    limits,
  });
  open.push(tollgate);
  return tollgate;
}

/** Every event recorded for a customer, oldest first. */
export async function eventsOf(tollgate: Tollgate, customerId: string): Promise<Event[]> {
  const page = await tollgate.events.list({ customerId, limit: 1000 });
  return page.data.reverse();
}

/** Usage in the nested V3/V4 shape. */
export function usage(input: number | undefined, output: number | undefined, extra: { cacheRead?: number; reasoning?: number } = {}) {
  return {
    inputTokens: { total: input, noCache: input === undefined ? undefined : input - (extra.cacheRead ?? 0), cacheRead: extra.cacheRead, cacheWrite: undefined },
    outputTokens: { total: output, text: output === undefined ? undefined : output - (extra.reasoning ?? 0), reasoning: extra.reasoning },
  };
}

export const stop = { unified: 'stop' as const, raw: 'stop' };

/** A doGenerate result with one text part. */
export function textResult(text: string, u = usage(10, 20)) {
  return { content: [{ type: 'text' as const, text }], finishReason: stop, usage: u, warnings: [] };
}

/** Stream parts for one text answer, split into deltas, ending with a finish part (unless `finish: false`). */
export function textChunks(deltas: string[], u: unknown = usage(10, 20), options: { finish?: boolean } = {}) {
  const parts: Array<Record<string, unknown>> = [{ type: 'stream-start', warnings: [] }, { type: 'text-start', id: 't1' }];
  for (const delta of deltas) parts.push({ type: 'text-delta', id: 't1', delta });
  parts.push({ type: 'text-end', id: 't1' });
  if (options.finish !== false) parts.push({ type: 'finish', finishReason: stop, usage: u });
  // The parts are valid V3 and V4 stream parts; the mocks' types want one or the other.
  return parts as never[];
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
