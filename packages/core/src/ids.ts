import { randomBytes } from 'node:crypto';

const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz';
/** `PAIRS[n]`: n (0 ≤ n < 36²) in two base-36 digits. */
const PAIRS = Array.from({ length: 36 * 36 }, (_, n) => DIGITS[Math.floor(n / 36)] + DIGITS[n % 36]);
const SEQUENCES = 36 ** 4;
/** Times that fit the 9 base-36 digits of an id. */
const TIMES = 36 ** 9;
let pool = Buffer.alloc(0);
let offset = 0;
let lastTime = -1;
let sequence = 0;
/** The last time seen, in 9 base-36 digits. */
let timeDigits = '';
/** The time's first 7 digits (they change every 36² ms) and the time they were written for, in units of 36² ms. */
let highDigits = '';
let highTime = -1;

/** Per prefix: its head (the prefix and `_`), the last id made with it and that id's parts. */
interface IdPrefix {
  head: string;
  /** The last id made with this prefix, and its three parts as numbers (see {@link idPartsOf}). */
  last: string;
  parts: [time: number, sequence: number, random: number];
}
const prefixes = new Map<string, IdPrefix>();

function prefixFor(prefix: string): IdPrefix {
  let p = prefixes.get(prefix);
  if (p === undefined) {
    p = { head: `${prefix}_`, last: '', parts: [0, 0, 0] };
    if (prefixes.size < 16) prefixes.set(prefix, p);
  }
  return p;
}

/** Two random base-36 digits, as a number below 36² (from two bytes of the pool). */
function randomPair(): number {
  const n = ((pool[offset] << 8) | pool[offset + 1]) % 1296;
  offset += 2;
  return n;
}

/**
 * A sortable unique id: a prefix, the time in base 36, a per-process sequence that keeps ids
 * made in the same millisecond in creation order, then 8 random characters. Ledgers order events
 * by (timestamp, id), so ids that follow creation order keep appends at the end.
 *
 * The id is joined from strings: the time's digits, worked out when the time changes, and
 * two-digit strings from a table. Building it character by character (`String.fromCharCode`)
 * cost some 2,000 instructions an id.
 */
export function newId(prefix: string, at = Date.now()): string {
  // A time that 9 base-36 digits cannot hold (before 1970, after the year 5188) is written as the
  // nearest one they can.
  const t = at >= 0 ? (at < TIMES ? Math.floor(at) : TIMES - 1) : 0;
  if (t !== lastTime) {
    // Only the last two digits are new most of the time; a number's toString(36) costs some 1,700
    // instructions (a floating-point remainder per digit).
    const high = Math.floor(t / 1296);
    if (high !== highTime) {
      highDigits = high.toString(36).padStart(7, '0');
      highTime = high;
    }
    timeDigits = highDigits + PAIRS[t - high * 1296];
    lastTime = t;
    sequence = 0;
  }
  const p = prefixFor(prefix);
  const seq = sequence++ % SEQUENCES;
  if (offset + 8 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const r0 = randomPair();
  const r1 = randomPair();
  const r2 = randomPair();
  const r3 = randomPair();
  const id = p.head + timeDigits + PAIRS[Math.floor(seq / 1296)] + PAIRS[seq % 1296] + PAIRS[r0] + PAIRS[r1] + PAIRS[r2] + PAIRS[r3];
  p.last = id;
  p.parts[0] = t;
  p.parts[1] = seq;
  p.parts[2] = ((r0 * 1296 + r1) * 1296 + r2) * 1296 + r3;
  return id;
}

/**
 * The parts of `id` as numbers, when it is the last id {@link newId} made with `prefix`: its time,
 * sequence and random digits read in base 36. The memory store keeps ids as these three numbers;
 * the id it is given is nearly always the one just made, and this spares it reading the digits.
 * Undefined for any other id. The array is reused by the next id.
 */
export function idPartsOf(id: string, prefix: string): readonly [number, number, number] | undefined {
  const p = prefixes.get(prefix);
  return p !== undefined && p.last === id ? p.parts : undefined;
}
