import type { CallParams, ModelPrice } from './options.js';

const CHARS_PER_TOKEN = 4;
const TOKENS_PER_FILE = 1000;

/** Token counts as the model reported them; a field is undefined when missing, NaN or negative. */
export interface ReportedUsage {
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
  cachedInputTokens?: number;
  reasoningTokens?: number;
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * Reads a language model's usage in any of the AI SDK's shapes: the nested V3/V4 shape
 * (`inputTokens: { total, noCache, cacheRead, cacheWrite }`, `outputTokens: { total, text, reasoning }`,
 * AI SDK 6 and 7) and the flat V2 shape (`inputTokens`, `cachedInputTokens`, … as numbers, AI SDK 5).
 */
export function readUsage(usage: unknown): ReportedUsage {
  if (typeof usage !== 'object' || usage === null) return {};
  const u = usage as Record<string, unknown>;
  const input = u.inputTokens;
  const output = u.outputTokens;
  const out: ReportedUsage = {};
  if (typeof input === 'object' && input !== null) {
    out.inputTokens = count((input as Record<string, unknown>).total);
    out.cachedInputTokens = count((input as Record<string, unknown>).cacheRead);
  } else {
    out.inputTokens = count(input);
    out.cachedInputTokens = count(u.cachedInputTokens);
  }
  if (typeof output === 'object' && output !== null) {
    out.outputTokens = count((output as Record<string, unknown>).total);
    out.reasoningTokens = count((output as Record<string, unknown>).reasoning);
  } else {
    out.outputTokens = count(output);
    out.reasoningTokens = count(u.reasoningTokens);
  }
  out.totalTokens = count(u.totalTokens);
  return out;
}

function textLength(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (value === undefined || value === null) return 0;
  try {
    return JSON.stringify(value)?.length ?? 0;
  } catch {
    return 0;
  }
}

/** Files count a flat amount: their base64 length says nothing about their token cost. */
function isFile(part: Record<string, unknown>): boolean {
  return part.type === 'file' || part.type === 'image' || part.type === 'media' || part.type === 'file-data' || part.type === 'file-url' || part.type === 'image-data' || part.type === 'image-url';
}

function partSize(part: unknown, size: { chars: number; files: number }): void {
  if (typeof part !== 'object' || part === null) return;
  const p = part as Record<string, unknown>;
  if (isFile(p)) {
    size.files += 1;
  } else if (typeof p.text === 'string') {
    size.chars += p.text.length;
  } else if (p.type === 'tool-call') {
    size.chars += textLength(p.input ?? p.args);
  } else if (p.type === 'tool-result') {
    const output = p.output as Record<string, unknown> | undefined;
    if (output && output.type === 'content' && Array.isArray(output.value)) {
      for (const item of output.value) partSize(item, size);
    } else {
      size.chars += textLength(output && 'value' in output ? output.value : output ?? p.result);
    }
  }
}

/** The default input estimate: prompt and tool-definition characters / 4, plus a flat amount per file. */
export function estimateInputTokens(params: CallParams): number {
  const size = { chars: 0, files: 0 };
  for (const message of params.prompt ?? []) {
    if (typeof message !== 'object' || message === null) continue;
    const content = (message as { content?: unknown }).content;
    if (typeof content === 'string') size.chars += content.length;
    else if (Array.isArray(content)) for (const part of content) partSize(part, size);
  }
  if (params.tools) for (const tool of params.tools) size.chars += textLength(tool);
  return Math.ceil(size.chars / CHARS_PER_TOKEN) + size.files * TOKENS_PER_FILE;
}

/** Output tokens from streamed characters, for calls that ended before the model reported usage. */
export function tokensFromChars(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN);
}

/** US cents for a call at list price; cached input at its own price when the table gives one. */
export function costCents(price: ModelPrice, inputTokens: number, outputTokens: number, cachedInputTokens = 0): number {
  const cached = Math.min(cachedInputTokens, inputTokens);
  const dollars =
    ((inputTokens - cached) * price.inputPerMillion +
      cached * (price.cachedInputPerMillion ?? price.inputPerMillion) +
      outputTokens * price.outputPerMillion) /
    1_000_000;
  // Six decimals of a cent keep sums free of float noise without losing a token's worth.
  return Math.round(dollars * 100 * 1e6) / 1e6;
}
