import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
let pool = Buffer.alloc(0);
let offset = 0;

function randomChars(n: number): string {
  if (offset + n > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[pool[offset++] % 36];
  return s;
}

/** A sortable unique id: a prefix, the time in base 36, then 12 random characters. */
export function newId(prefix: string, at = Date.now()): string {
  return `${prefix}_${at.toString(36).padStart(9, '0')}${randomChars(12)}`;
}
