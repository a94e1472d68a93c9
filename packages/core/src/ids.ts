import { randomBytes } from 'node:crypto';

/** Character codes of 0-9a-z. */
const DIGITS = Array.from('0123456789abcdefghijklmnopqrstuvwxyz', (c) => c.charCodeAt(0));
const SEQUENCES = 36 ** 4;
/** Times that fit the 9 base-36 digits of an id. */
const TIMES = 36 ** 9;
let pool = Buffer.alloc(0);
let offset = 0;
let lastTime = -1;
let sequence = 0;
/** Base-36 codes of the last time seen, 9 characters. */
const time: number[] = new Array(9).fill(0);

/**
 * Per prefix, the character codes of a whole id, rewritten in place and read as one flat string
 * by `String.fromCharCode` (no call into C++, unlike decoding a Buffer): the prefix and `_` once,
 * the time when it changes, the sequence and random part on every call.
 */
interface IdCodes {
  codes: number[];
  /** Where the time starts (the prefix's length, plus `_`). */
  start: number;
  /** The time its time characters were written for. */
  time: number;
  /** The last id made with this prefix, and its three parts as numbers (see {@link idPartsOf}). */
  last: string;
  parts: [time: number, sequence: number, random: number];
}
const buffers = new Map<string, IdCodes>();

function bufferFor(prefix: string): IdCodes {
  let b = buffers.get(prefix);
  if (b === undefined) {
    const head = `${prefix}_`;
    const codes = Array.from({ length: head.length }, (_, i) => head.charCodeAt(i));
    const start = codes.length;
    for (let i = 0; i < 21; i++) codes.push(DIGITS[0]);
    b = { codes, start, time: -1, last: '', parts: [0, 0, 0] };
    if (buffers.size < 16) buffers.set(prefix, b);
  }
  return b;
}

/**
 * Writes `n` in base 36 into `codes[at, at + width)`, from the last digit up. With `previous`
 * (the number written there before), it stops where the digits left agree: from one millisecond
 * to the next only the last one or two change.
 */
function writeBase36(codes: number[], at: number, width: number, n: number, previous = -1): void {
  for (let i = at + width - 1; i >= at; i--) {
    codes[i] = DIGITS[n % 36];
    n = Math.floor(n / 36);
    previous = Math.floor(previous / 36);
    if (n === previous) return;
  }
}

/**
 * A sortable unique id: a prefix, the time in base 36, a per-process sequence that keeps ids
 * made in the same millisecond in creation order, then 8 random characters. Ledgers order events
 * by (timestamp, id), so ids that follow creation order keep appends at the end.
 */
export function newId(prefix: string, at = Date.now()): string {
  // A time that 9 base-36 digits cannot hold (before 1970, after the year 5188) is written as the
  // nearest one they can.
  const t = at >= 0 ? (at < TIMES ? Math.floor(at) : TIMES - 1) : 0;
  if (t !== lastTime) {
    writeBase36(time, 0, 9, t, lastTime);
    lastTime = t;
    sequence = 0;
  }
  const b = bufferFor(prefix);
  const codes = b.codes;
  const p = b.start;
  if (b.time !== t) {
    b.time = t;
    for (let i = 0; i < 9; i++) codes[p + i] = time[i];
  }
  const seq = sequence++ % SEQUENCES;
  let n = seq;
  for (let i = p + 12; i >= p + 9; i--) {
    codes[i] = DIGITS[n % 36];
    n = (n / 36) | 0;
  }
  if (offset + 8 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  let random = 0;
  for (let i = p + 13; i < p + 21; i++) {
    const d = pool[offset++] % 36;
    codes[i] = DIGITS[d];
    random = random * 36 + d;
  }
  const id = String.fromCharCode.apply(null, codes);
  b.last = id;
  b.parts[0] = t;
  b.parts[1] = seq;
  b.parts[2] = random;
  return id;
}

/**
 * The parts of `id` as numbers, when it is the last id {@link newId} made with `prefix`: its time,
 * sequence and random digits read in base 36. The memory store keeps ids as these three numbers;
 * the id it is given is nearly always the one just made, and this spares it reading the digits.
 * Undefined for any other id. The array is reused by the next id.
 */
export function idPartsOf(id: string, prefix: string): readonly [number, number, number] | undefined {
  const b = buffers.get(prefix);
  return b !== undefined && b.last === id ? b.parts : undefined;
}
