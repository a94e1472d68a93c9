import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
let pool = Buffer.alloc(0);
let offset = 0;
let lastTime = -1;
let sequence = 0;

function randomChars(n: number): string {
  if (offset + n > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[pool[offset++] % 36];
  return s;
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
  }
  const seq = (sequence++ % 1_679_616).toString(36).padStart(4, '0');
  return `${prefix}_${at.toString(36).padStart(9, '0')}${seq}${randomChars(8)}`;
}
