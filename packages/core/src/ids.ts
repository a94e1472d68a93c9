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

/**
 * Per prefix, the bytes of a whole id, rewritten in place and read as one flat string: the prefix
 * and `_` once, the time when it changes, the sequence and random part on every call.
 */
interface IdBuffer {
  bytes: Buffer;
  /** Where the time starts (the prefix's length in bytes, plus `_`). */
  start: number;
  /** The time its time characters were written for. */
  time: number;
  /** latin1 for an ASCII prefix (the fast read), utf8 otherwise. */
  encoding: 'latin1' | 'utf8';
}
const buffers = new Map<string, IdBuffer>();

function bufferFor(prefix: string): IdBuffer {
  let b = buffers.get(prefix);
  if (b === undefined) {
    const head = Buffer.from(`${prefix}_`, 'utf8');
    const bytes = Buffer.alloc(head.length + 21);
    head.copy(bytes);
    b = { bytes, start: head.length, time: -1, encoding: head.length === prefix.length + 1 ? 'latin1' : 'utf8' };
    if (buffers.size < 16) buffers.set(prefix, b);
  }
  return b;
}

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
  const b = bufferFor(prefix);
  const bytes = b.bytes;
  const p = b.start;
  if (b.time !== at) {
    b.time = at;
    for (let i = 0; i < 9; i++) bytes[p + i] = time[i];
  }
  let n = sequence++ % SEQUENCES;
  for (let i = p + 12; i >= p + 9; i--) {
    bytes[i] = DIGITS[n % 36];
    n = (n / 36) | 0;
  }
  if (offset + 8 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  for (let i = p + 13; i < p + 21; i++) bytes[i] = DIGITS[pool[offset++] % 36];
  return bytes.toString(b.encoding, 0, p + 21);
}
