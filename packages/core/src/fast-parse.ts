/**
 * Validation of the hot-path inputs (record, check, reserve, commit) without zod's generic
 * machinery. Each function accepts only input it can prove valid by the same rules as the zod
 * schema and builds the same output; anything else — every invalid input and every unusual
 * valid one (a Date subclass, a symbol key, an odd prototype) — goes to zod, which then answers
 * or throws the `invalid_request` error. So errors never differ, and the fast path only skips
 * work. test/fast-parse.test.ts checks the agreement on random inputs.
 */
import {
  MAX_BATCH,
  MAX_DIMENSIONS,
  MAX_VALUES,
  batchIngestSchema,
  checkSchema,
  commitSchema,
  parse,
  recordEventSchema,
  reserveSchema,
} from './schemas.js';
import type { z } from 'zod';

/**
 * ASCII codes allowed in a key (`[A-Za-z0-9_.-]`, bit 1) and in an event type (`[A-Za-z0-9_.:-]`,
 * bit 2): the schemas' regular expressions as a table, since a short loop over a few characters
 * costs a fraction of a regular expression call, and these run on every check and record.
 */
const CHARS = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-') CHARS[c.charCodeAt(0)] = 3;
CHARS[':'.charCodeAt(0)] = 2;
const KEY_CHAR = 1;
const EVENT_TYPE_CHAR = 2;

/** Whether `s` is 1 to `max` characters, each of the class `bit` in {@link CHARS}. */
function charsIn(s: string, max: number, bit: number): boolean {
  const n = s.length;
  if (n === 0 || n > max) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || (CHARS[c] & bit) === 0) return false;
  }
  return true;
}

/** Whether `s` may hold a character that needs the full storable() rule: NUL or a surrogate. */
function maybeUnstorable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || (c >= 0xd800 && c <= 0xdfff)) return true;
  }
  return false;
}
const MAX_TTL_MS = 7 * 24 * 3600 * 1000;

/** Thrown internally to leave the fast path; never escapes this module. */
const DEFER = Symbol('defer');

/** An object literal or `Object.create(null)`: nothing a getter, a class or a proxy could change. */
function plainShape(o: unknown): o is Record<string, unknown> {
  if (o === null || typeof o !== 'object') return false;
  const proto = Object.getPrototypeOf(o);
  return proto === Object.prototype || proto === null;
}

/**
 * A plain object without symbol keys, for records: zod reads a record's keys with
 * `Reflect.ownKeys` and rejects a symbol key, so such a record goes to zod.
 */
function plainObject(o: unknown): o is Record<string, unknown> {
  return plainShape(o) && Object.getOwnPropertySymbols(o).length === 0;
}

/** What the two below hold before anything has passed: no input can be equal to it. */
const NONE = Symbol('none');

/**
 * The last id and event type that passed. A route or a loop passes the same ones again and
 * again (one customer's requests, one event type per route), and an equal string is valid too.
 */
let lastId: string | typeof NONE = NONE;
let lastEventType: string | typeof NONE = NONE;

function id(v: unknown): string {
  if (v === lastId) return v as string;
  if (typeof v !== 'string' || v.length === 0 || v.length > 256 || maybeUnstorable(v)) throw DEFER;
  return (lastId = v);
}

function eventType(v: unknown): string {
  if (v === lastEventType) return v as string;
  if (typeof v !== 'string' || !charsIn(v, 128, EVENT_TYPE_CHAR)) throw DEFER;
  return (lastEventType = v);
}

function key(k: string): void {
  if (!charsIn(k, 64, KEY_CHAR) || k === '__proto__' || k === 'constructor' || k === 'prototype') throw DEFER;
}

/** A record of dimension-style keys whose values pass `valid`, at most `max` of them. */
function keyed<T>(v: unknown, max: number, valid: (x: unknown) => x is T): Record<string, T> {
  if (!plainObject(v)) throw DEFER;
  const out: Record<string, T> = {};
  let n = 0;
  for (const k of Object.keys(v)) {
    key(k);
    const x = v[k];
    if (!valid(x)) throw DEFER;
    out[k] = x;
    n++;
  }
  if (n > max) throw DEFER;
  return out;
}

const finiteNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const dimensionValue = (x: unknown): x is string => typeof x === 'string' && x.length <= 256 && !maybeUnstorable(x);
const values = (v: unknown) => keyed(v, MAX_VALUES, finiteNumber);
const dimensions = (v: unknown) => keyed(v, MAX_DIMENSIONS, dimensionValue);

function properties(v: unknown): Record<string, unknown> {
  if (!plainObject(v)) throw DEFER;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') throw DEFER;
    out[k] = v[k];
  }
  return out;
}

function date(v: unknown): number {
  const ms = typeof v === 'string' ? Date.parse(v) : v instanceof Date && Object.getPrototypeOf(v) === Date.prototype ? v.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw DEFER;
  return ms;
}

/**
 * Runs `fast` on a plain object input; falls back to zod for anything it does not vouch for. An
 * input's symbol keys are ignored by both (zod's objects look only at string keys), so the input
 * itself is spared the symbol check (an array allocated per call).
 */
function parser<S extends z.ZodType>(schema: S, what: string, fast: (input: Record<string, unknown>) => z.output<S>): (input: unknown) => z.output<S> {
  return (input) => {
    if (plainShape(input)) {
      try {
        return fast(input);
      } catch (e) {
        if (e !== DEFER) throw e;
      }
    }
    return parse(schema, input, what);
  };
}

function recordEvent(i: Record<string, unknown>): z.output<typeof recordEventSchema> {
  const out: z.output<typeof recordEventSchema> = { customerId: '', eventType: '' };
  let required = 0;
  for (const k in i) {
    const v = i[k];
    switch (k) {
      case 'customerId': out.customerId = id(v); required++; break;
      case 'eventType': out.eventType = eventType(v); required++; break;
      case 'values': if (v !== undefined) out.values = values(v); break;
      case 'dimensions': if (v !== undefined) out.dimensions = dimensions(v); break;
      case 'properties': if (v !== undefined) out.properties = properties(v); break;
      case 'timestamp': if (v !== undefined) out.timestamp = date(v); break;
      case 'idempotencyKey': if (v !== undefined) out.idempotencyKey = id(v); break;
      default: throw DEFER;
    }
  }
  if (required !== 2) throw DEFER;
  return out;
}

export const parseRecordEvent = parser(recordEventSchema, 'event', recordEvent);

export const parseBatchIngest = parser(batchIngestSchema, 'batch', (i) => {
  for (const k in i) if (k !== 'events') throw DEFER;
  const events = i.events;
  if (!Array.isArray(events) || events.length < 1 || events.length > MAX_BATCH) throw DEFER;
  const out: Array<z.output<typeof recordEventSchema>> = new Array(events.length);
  for (let j = 0; j < events.length; j++) {
    const e: unknown = events[j];
    if (!plainObject(e)) throw DEFER;
    out[j] = recordEvent(e);
  }
  return { events: out };
});

export const parseCheck = parser(checkSchema, 'check', (i) => {
  const out: z.output<typeof checkSchema> = { customerId: '' };
  let required = 0;
  for (const k in i) {
    const v = i[k];
    switch (k) {
      case 'customerId': out.customerId = id(v); required++; break;
      case 'eventType': if (v !== undefined) out.eventType = eventType(v); break;
      case 'dimensions': if (v !== undefined) out.dimensions = dimensions(v); break;
      case 'estimate': if (v !== undefined) out.estimate = values(v); break;
      default: throw DEFER;
    }
  }
  if (required !== 1) throw DEFER;
  return out;
});

export const parseReserve = parser(reserveSchema, 'reservation', (i) => {
  const out: z.output<typeof reserveSchema> = { customerId: '', eventType: '', estimate: {} };
  let required = 0;
  for (const k in i) {
    const v = i[k];
    switch (k) {
      case 'customerId': out.customerId = id(v); required++; break;
      case 'eventType': out.eventType = eventType(v); required++; break;
      case 'estimate': out.estimate = values(v); required++; break;
      case 'dimensions': if (v !== undefined) out.dimensions = dimensions(v); break;
      case 'ttlMs':
        if (v === undefined) break;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_TTL_MS) throw DEFER;
        out.ttlMs = v;
        break;
      default: throw DEFER;
    }
  }
  if (required !== 3) throw DEFER;
  return out;
});

export const parseCommit = parser(commitSchema, 'commit', (i) => {
  const out: z.output<typeof commitSchema> = {};
  for (const k in i) {
    const v = i[k];
    if (v === undefined) {
      if (k !== 'values' && k !== 'dimensions' && k !== 'properties' && k !== 'timestamp') throw DEFER;
      continue;
    }
    switch (k) {
      case 'values': out.values = values(v); break;
      case 'dimensions': out.dimensions = dimensions(v); break;
      case 'properties': out.properties = properties(v); break;
      case 'timestamp': out.timestamp = date(v); break;
      default: throw DEFER;
    }
  }
  return out;
});

export type ParsedEvent = z.output<typeof recordEventSchema>;
export type ParsedCheck = z.output<typeof checkSchema>;
