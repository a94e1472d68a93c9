import type { MeteredCall } from './metered-call.js';

type Part = { type: string; [key: string]: unknown };

/** `{ unified, raw }` on V3/V4 models, a plain string on V2 models. */
export function finishReasonOf(reason: unknown): string | undefined {
  if (typeof reason === 'string') return reason;
  if (typeof reason === 'object' && reason !== null) {
    const unified = (reason as { unified?: unknown }).unified;
    if (typeof unified === 'string') return unified;
  }
  return undefined;
}

function inputLength(input: unknown): number {
  if (typeof input === 'string') return input.length;
  try {
    return JSON.stringify(input)?.length ?? 0;
  } catch {
    return 0;
  }
}

/**
 * Passes a model's stream through unchanged and records the call once when it ends: with the
 * `finish` part's usage when the stream completes; with what was seen so far when the consumer
 * cancels, the call's abort signal fires, or the stream errors.
 */
export function meterStream<T extends Part>(source: ReadableStream<T>, call: MeteredCall, signal: AbortSignal | undefined): ReadableStream<T> {
  const reader = source.getReader();
  let usage: unknown;
  let finishReason: string | undefined;
  let streamError: unknown;
  let chars = 0;
  let streamedToolInputs: Set<unknown> | undefined;

  const onAbort = () => {
    void call.finishUnattended({ outcome: 'aborted', usage, finishReason, observedOutputChars: chars, error: signal?.reason });
  };
  const stopListening = () => signal?.removeEventListener('abort', onAbort);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });

  const observe = (part: T) => {
    switch (part.type) {
      case 'text-delta':
      case 'reasoning-delta':
        chars += typeof part.delta === 'string' ? part.delta.length : 0;
        break;
      case 'tool-input-delta':
        chars += typeof part.delta === 'string' ? part.delta.length : 0;
        (streamedToolInputs ??= new Set()).add(part.id);
        break;
      case 'tool-call':
        // Providers that stream tool inputs repeat the whole input in the tool-call part.
        if (!streamedToolInputs?.has(part.toolCallId)) chars += inputLength(part.input);
        break;
      case 'finish':
        usage = part.usage;
        finishReason = finishReasonOf(part.finishReason);
        break;
      case 'error':
        streamError = part.error;
        break;
    }
  };

  return new ReadableStream<T>(
    {
      async pull(controller) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          stopListening();
          await call.finishUnattended({ outcome: signal?.aborted ? 'aborted' : 'error', usage, finishReason, observedOutputChars: chars, error });
          controller.error(error);
          return;
        }
        if (next.done) {
          stopListening();
          const outcome = streamError === undefined ? 'completed' : 'error';
          try {
            await call.finish({ outcome, usage, finishReason, observedOutputChars: chars, error: streamError });
          } catch (recordError) {
            controller.error(recordError);
            return;
          }
          controller.close();
          return;
        }
        observe(next.value);
        controller.enqueue(next.value);
      },
      async cancel(reason) {
        stopListening();
        // Cancel upstream first so the provider stops generating (and billing) at once.
        await Promise.all([
          reader.cancel(reason).catch(() => {}),
          call.finishUnattended({ outcome: 'aborted', usage, finishReason, observedOutputChars: chars }),
        ]);
      },
    },
    // Pull only when the consumer reads, so "seen so far" is what the consumer was handed.
    { highWaterMark: 0 },
  );
}
