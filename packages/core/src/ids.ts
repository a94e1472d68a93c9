import { randomBytes } from 'node:crypto';

/** Character codes of 0-9a-z. */
const DIGITS = Array.from('0123456789abcdefghijklmnopqrstuvwxyz', (c) => c.charCodeAt(0));
const SEQUENCES = 36 ** 4;
let pool = Buffer.alloc(0);
let offset = 0;
let lastTime = -1;
let sequence = 0;
/** Base-36 codes of the last time seen, 9 characters. */
const time: number[] = new Array(9).fill(0);
/** Per prefix, the character codes of a whole id, rewritten in place: one flat string per id. */
const buffers = new Map<string, number[]>();

function writeBase36(codes: number[], at: number, width: number, n: number): void {
  for (let i = at + width - 1; i >= at; i--) {
    codes[i] = DIGITS[n % 36];
    n = Math.floor(n / 36);
  }
}

/**
 * A sortable unique id: a prefix, the time in base 36, a per-process sequence that keeps ids
 * made in the same millisecond in creation order, then 8 random characters. Ledgers order events
 * by (timestamp, id), so ids that follow creation order keep appends at the end.
 */
export function newId(prefix: string, at = Date.now()): string {
  if (at !== lastTime) {
    lastTime = at;
    sequence = 0;
    writeBase36(time, 0, 9, at);
  }
  let codes = buffers.get(prefix);
  if (codes === undefined) {
    codes = [...Array.from(prefix, (c) => c.charCodeAt(0)), 95, ...new Array(21).fill(0)];
    if (buffers.size < 16) buffers.set(prefix, codes);
  }
  const p = prefix.length + 1;
  for (let i = 0; i < 9; i++) codes[p + i] = time[i];
  writeBase36(codes, p + 9, 4, sequence++ % SEQUENCES);
  if (offset + 8 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  for (let i = p + 13; i < p + 21; i++) codes[i] = DIGITS[pool[offset++] % 36];
  return String.fromCharCode.apply(null, codes);
}
