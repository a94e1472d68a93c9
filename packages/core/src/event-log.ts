import { idPartsOf } from './ids.js';
import type { StoredEvent } from './store.js';
import type { Dimensions, Values } from './types.js';

/**
 * The memory store's events, kept in columns of typed arrays rather than as one object graph per
 * event. A kept object (the event, its id, its boxed timestamp, its values) survives the young
 * generation and is copied and later marked by every major GC; with one graph per event that
 * was most of the cost of recording once the ledger grew. Here an event is a row: numbers in
 * typed arrays (outside the JS heap), strings as codes into one table (customer ids, event types,
 * dimension values), values and dimensions as a shape (the ordered key list, shared) plus their
 * entries in a number heap. Ids in the engine's format (`evt_`/`rsv_`, then 21 base-36 digits)
 * are kept as three numbers; any other id or key, and properties, in maps by row.
 * Rows are appended; {@link RowList}s keep them in (timestamp, id) order.
 */
export class EventLog {
  size = 0;
  private timestamps = new Float64Array(1024);
  private customers = new Int32Array(1024);
  private eventTypes = new Int32Array(1024);
  private valueShapes = new Int32Array(1024);
  private valueStarts = new Int32Array(1024);
  private dimensionShapes = new Int32Array(1024);
  private dimensionStarts = new Int32Array(1024);
  /** Per row, the event id as (time digits, sequence digits, random digits), or NaN when kept in {@link otherIds}. */
  private ids = new Float64Array(3 * 1024);
  /** Per row, the idempotency key the same way; NaN for none or one kept in {@link otherKeys}. */
  private keys = new Float64Array(3 * 1024);
  private otherIds = new Map<number, string>();
  private otherKeys = new Map<number, string>();
  private properties = new Map<number, Record<string, unknown>>();
  private values = new Float64Array(4096);
  private valueTop = 0;
  private dimensions = new Int32Array(4096);
  private dimensionTop = 0;

  /** Interned strings: customer ids, event types, dimension values. */
  private readonly strings: string[] = [];
  private readonly codes = new Map<string, number>();
  /** Key lists of values and dimensions; shape 0 is the empty one. */
  private readonly shapes: string[][] = [[]];
  private readonly shapeCodes = new Map<string, number>([['', 0]]);
  private lastValueShape = 0;
  private lastDimensionShape = 0;

  /** The code of `s`, interned if new. */
  code(s: string): number {
    return intern(this.codes, this.strings, s, s);
  }

  /** The code of `s`, or -1 when no row holds it (a query for it matches nothing). */
  knownCode(s: string): number {
    return this.codes.get(s) ?? -1;
  }

  /** Appends an event; returns its row. */
  append(e: StoredEvent, customer: number): number {
    const row = this.size;
    if (row === this.timestamps.length) this.grow();
    this.timestamps[row] = e.timestamp;
    this.customers[row] = customer;
    this.eventTypes[row] = this.code(e.eventType);
    // Values: numbers into the value heap.
    const values = e.values;
    const valueShape = this.shapeOf(values, this.lastValueShape);
    this.lastValueShape = valueShape;
    const valueKeys = this.shapes[valueShape];
    if (this.valueTop + valueKeys.length > this.values.length) this.values = grown(this.values, this.valueTop + valueKeys.length);
    this.valueShapes[row] = valueShape;
    this.valueStarts[row] = this.valueTop;
    for (let i = 0; i < valueKeys.length; i++) this.values[this.valueTop++] = values[valueKeys[i]];
    // Dimensions: string codes into the dimension heap.
    const dims = e.dimensions;
    const dimensionShape = this.shapeOf(dims, this.lastDimensionShape);
    this.lastDimensionShape = dimensionShape;
    const dimensionKeys = this.shapes[dimensionShape];
    if (this.dimensionTop + dimensionKeys.length > this.dimensions.length) this.dimensions = grown(this.dimensions, this.dimensionTop + dimensionKeys.length);
    this.dimensionShapes[row] = dimensionShape;
    this.dimensionStarts[row] = this.dimensionTop;
    for (let i = 0; i < dimensionKeys.length; i++) this.dimensions[this.dimensionTop++] = this.code(dims[dimensionKeys[i]]);
    if (!writeId(this.ids, row, e.id, EVENT)) this.otherIds.set(row, e.id);
    const key = e.idempotencyKey;
    if (key === undefined) this.keys[3 * row] = Number.NaN;
    else if (!writeId(this.keys, row, key, RESERVATION)) {
      this.keys[3 * row] = Number.NaN;
      this.otherKeys.set(row, key);
    }
    if (e.properties !== undefined) this.properties.set(row, e.properties);
    this.size = row + 1;
    return row;
  }

  /** The shape of a values or dimensions record: the last one's when the keys are the same. */
  private shapeOf(record: Record<string, unknown>, last: number): number {
    const keys = this.shapes[last];
    let i = 0;
    let same = true;
    for (const k in record) {
      if (i >= keys.length || keys[i] !== k) {
        same = false;
        break;
      }
      i++;
    }
    if (same && i === keys.length) return last;
    const all = Object.keys(record);
    return intern(this.shapeCodes, this.shapes, all.join('\u0000'), all);
  }

  private grow(): void {
    const n = this.timestamps.length * 2;
    this.timestamps = grown(this.timestamps, n);
    this.customers = grown(this.customers, n);
    this.eventTypes = grown(this.eventTypes, n);
    this.valueShapes = grown(this.valueShapes, n);
    this.valueStarts = grown(this.valueStarts, n);
    this.dimensionShapes = grown(this.dimensionShapes, n);
    this.dimensionStarts = grown(this.dimensionStarts, n);
    this.ids = grown(this.ids, 3 * n);
    this.keys = grown(this.keys, 3 * n);
  }

  timestamp(row: number): number {
    return this.timestamps[row];
  }

  customerCode(row: number): number {
    return this.customers[row];
  }

  eventTypeCode(row: number): number {
    return this.eventTypes[row];
  }

  customerId(row: number): string {
    return this.strings[this.customers[row]];
  }

  eventType(row: number): string {
    return this.strings[this.eventTypes[row]];
  }

  id(row: number): string {
    return this.otherIds.get(row) ?? readId(this.ids, row, EVENT);
  }

  idempotencyKey(row: number): string | undefined {
    if (!Number.isNaN(this.keys[3 * row])) return readId(this.keys, row, RESERVATION);
    return this.otherKeys.get(row);
  }

  /** The value of `key` in the row's values, if it has one. */
  value(row: number, key: string): number | undefined {
    const i = this.shapes[this.valueShapes[row]].indexOf(key);
    return i < 0 ? undefined : this.values[this.valueStarts[row] + i];
  }

  /** The row's dimension `key`, if it has one. */
  dimension(row: number, key: string): string | undefined {
    const i = this.shapes[this.dimensionShapes[row]].indexOf(key);
    return i < 0 ? undefined : this.strings[this.dimensions[this.dimensionStarts[row] + i]];
  }

  /** Adds the row's values to `totals` by key. */
  addValues(row: number, totals: Record<string, number>): void {
    const keys = this.shapes[this.valueShapes[row]];
    const at = this.valueStarts[row];
    for (let i = 0; i < keys.length; i++) totals[keys[i]] = (totals[keys[i]] ?? 0) + this.values[at + i];
  }

  /** Every key of `filter` is among the row's dimensions with the same value. */
  dimensionsMatch(row: number, filter: Dimensions | undefined): boolean {
    if (filter === undefined) return true;
    for (const k in filter) if (this.dimension(row, k) !== filter[k]) return false;
    return true;
  }

  /** The row as an event: fresh objects, so a caller that changes them changes nothing kept. */
  event(row: number): StoredEvent {
    const values: Values = {};
    const valueKeys = this.shapes[this.valueShapes[row]];
    for (let i = 0, at = this.valueStarts[row]; i < valueKeys.length; i++) values[valueKeys[i]] = this.values[at + i];
    const dimensions: Dimensions = {};
    const dimensionKeys = this.shapes[this.dimensionShapes[row]];
    for (let i = 0, at = this.dimensionStarts[row]; i < dimensionKeys.length; i++) dimensions[dimensionKeys[i]] = this.strings[this.dimensions[at + i]];
    const e: StoredEvent = { id: this.id(row), customerId: this.customerId(row), eventType: this.eventType(row), values, dimensions, timestamp: this.timestamps[row] };
    const properties = this.properties.get(row);
    if (properties !== undefined) e.properties = properties;
    const key = this.idempotencyKey(row);
    if (key !== undefined) e.idempotencyKey = key;
    return e;
  }

  /** Orders rows by (timestamp, id). */
  compare(a: number, b: number): number {
    const t = this.timestamps[a] - this.timestamps[b];
    if (t !== 0) return t;
    if (this.otherIds.size === 0 || (!this.otherIds.has(a) && !this.otherIds.has(b))) {
      const ids = this.ids;
      return ids[3 * a] - ids[3 * b] || ids[3 * a + 1] - ids[3 * b + 1] || ids[3 * a + 2] - ids[3 * b + 2];
    }
    const x = this.id(a);
    const y = this.id(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  /** Whether the row comes before (timestamp, id). */
  before(row: number, timestamp: number, id: string): boolean {
    const t = this.timestamps[row];
    return t < timestamp || (t === timestamp && id !== '' && this.id(row) < id);
  }
}

/** Row numbers of an {@link EventLog} in (timestamp, id) order. */
export class RowList {
  rows = new Int32Array(8);
  length = 0;

  /** Places `row`: at the end when it sorts last (an event recorded now), else where it belongs. */
  insert(log: EventLog, row: number): void {
    const n = this.length;
    if (n === this.rows.length) this.rows = grown(this.rows, 2 * n);
    if (n === 0 || log.compare(this.rows[n - 1], row) <= 0) {
      this.rows[n] = row;
    } else {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (log.compare(this.rows[mid], row) < 0) lo = mid + 1;
        else hi = mid;
      }
      this.rows.copyWithin(lo + 1, lo, n);
      this.rows[lo] = row;
    }
    this.length = n + 1;
  }

  /** Index of the first row not before (timestamp, id). */
  lowerBound(log: EventLog, timestamp: number, id = ''): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log.before(this.rows[mid], timestamp, id)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** An id prefix as `newId` takes it, and the head its ids start with. */
interface IdKind {
  prefix: string;
  head: string;
}

function idKind(prefix: string): IdKind {
  return { prefix, head: `${prefix}_` };
}

/** The engine's id kinds: event ids, and reservation ids (a commit's idempotency key). */
const EVENT = idKind('evt');
const RESERVATION = idKind('rsv');

/** The code of `key` in `codes`; a new key gets the next code, with `value` added to `list` under it. */
function intern<T>(codes: Map<string, number>, list: T[], key: string, value: T): number {
  let c = codes.get(key);
  if (c === undefined) {
    c = list.length;
    list.push(value);
    codes.set(key, c);
  }
  return c;
}

function grown<T extends Float64Array | Int32Array>(a: T, atLeast: number): T {
  let n = a.length * 2;
  while (n < atLeast) n *= 2;
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

/** Base-36 digit value of a character code of 0-9a-z, else -1. */
function digit(c: number): number {
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 122 ? c - 87 : -1;
}

/** Parses the kind's head + 9 + 4 + 8 base-36 digits into `out[3 * row ..]`; false when `id` has another form. */
function writeId(out: Float64Array, row: number, id: string, kind: IdKind): boolean {
  const known = idPartsOf(id, kind.prefix);
  if (known !== undefined) {
    out[3 * row] = known[0];
    out[3 * row + 1] = known[1];
    out[3 * row + 2] = known[2];
    return true;
  }
  const head = kind.head;
  if (id.length !== head.length + 21 || !id.startsWith(head)) return false;
  let p = head.length;
  for (let part = 0; part < 3; part++) {
    const width = part === 0 ? 9 : part === 1 ? 4 : 8;
    let n = 0;
    for (const end = p + width; p < end; p++) {
      const d = digit(id.charCodeAt(p));
      if (d < 0) return false;
      n = n * 36 + d;
    }
    out[3 * row + part] = n;
  }
  return true;
}

function readId(from: Float64Array, row: number, kind: IdKind): string {
  const at = 3 * row;
  return kind.head + from[at].toString(36).padStart(9, '0') + from[at + 1].toString(36).padStart(4, '0') + from[at + 2].toString(36).padStart(8, '0');
}
