/** What the SQLite and Postgres stores share besides the counters logic. */
import { TollgateError } from '../errors.js';
import type { StoredEvent } from '../store.js';

/** One schema version: statements run in one transaction, then the version is recorded. */
export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

/**
 * Loads an optional driver, or says what to install. The specifier is passed by the caller as a
 * literal `import()` so bundlers keep it external and nothing is loaded until a store needs it.
 */
export async function loadDriver<T>(load: () => Promise<T>, name: string, install: string, store: string, inject: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: string })?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new TollgateError('store_unavailable', `Install ${name} (${install}) to use ${store}, or pass ${inject}.`, { cause: error });
    }
    throw error;
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why a string cannot be stored unchanged, or null. Drivers encode strings as UTF-8, which turns
 * a lone surrogate into U+FFFD; Postgres text and jsonb also refuse U+0000.
 */
export function unstorable(s: string, allowNul: boolean): string | null {
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate';
  if (!allowNul && s.includes('\u0000')) return 'contains U+0000, which PostgreSQL cannot store';
  return null;
}

function walk(value: unknown, path: string, allowNul: boolean, issues: Array<{ path: string; message: string }>): void {
  if (typeof value === 'string') {
    const why = unstorable(value, allowNul);
    if (why) issues.push({ path, message: why });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, `${path}.${i}`, allowNul, issues));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const why = unstorable(k, allowNul);
      if (why) issues.push({ path: `${path}.${k}`, message: `key ${why}` });
      walk(v, `${path}.${k}`, allowNul, issues);
    }
  }
}

/**
 * Rejects values the database would store altered or refuse, with `invalid_request` before
 * anything is written. `what` names the input in the message.
 */
export function assertStorable(fields: Record<string, unknown>, what: string, allowNul: boolean): void {
  const issues: Array<{ path: string; message: string }> = [];
  for (const [path, value] of Object.entries(fields)) if (value !== undefined) walk(value, path, allowNul, issues);
  if (issues.length === 0) return;
  const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new TollgateError('invalid_request', `Invalid ${what}: ${list}. This store keeps text as UTF-8; remove the character and call again.`, { issues });
}

export function assertStorableEvents(events: StoredEvent[], allowNul: boolean): void {
  events.forEach((e, i) => {
    assertStorable(
      { customerId: e.customerId, eventType: e.eventType, values: e.values, dimensions: e.dimensions, properties: e.properties, idempotencyKey: e.idempotencyKey },
      events.length === 1 ? 'event' : `event ${i}`,
      allowNul,
    );
  });
}

/** Whether every given string could have been stored; a lookup with one that could not finds nothing. */
export function allStorable(strings: Array<string | undefined>, allowNul: boolean): boolean {
  for (const s of strings) if (s !== undefined && unstorable(s, allowNul)) return false;
  return true;
}

export interface EventRow {
  id: string;
  customer_id: string;
  event_type: string;
  timestamp_ms: number | string;
  event_values: string | Record<string, number>;
  dimensions: string | Record<string, string>;
  properties: string | Record<string, unknown> | null;
  idempotency_key: string | null;
}

const json = <T>(v: string | T): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

export function eventFromRow(row: EventRow): StoredEvent {
  const event: StoredEvent = {
    id: row.id,
    customerId: row.customer_id,
    eventType: row.event_type,
    values: json(row.event_values),
    dimensions: json(row.dimensions),
    timestamp: Number(row.timestamp_ms),
  };
  if (row.properties !== null) event.properties = json(row.properties);
  if (row.idempotency_key !== null) event.idempotencyKey = row.idempotency_key;
  return event;
}

/** Sorted distinct keys of every event's values: the columns an aggregate query sums. */
export function valueKeysOf(events: StoredEvent[]): string[] {
  const keys = new Set<string>();
  for (const e of events) for (const k in e.values) keys.add(k);
  return [...keys].sort();
}

/** Builds a {@link ValueTotals} `values` map without letting a key such as `__proto__` reach a prototype. */
export function setValue(target: Record<string, number>, key: string, value: number): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
