/**
 * Ledger queries shared by the SQLite and Postgres stores. Each builds one SQL statement that
 * aggregates in the database; a {@link Dialect} supplies the JSON operators and placeholders.
 * Every caller-supplied string travels as a parameter, never in the SQL text.
 */
import { emptyState } from '../slots.js';
import type { EventCursor, EventQuery, MeterSource, SlotState, ValueTotals } from '../store.js';
import type { Dimensions } from '../types.js';
import { setValue } from './common.js';

export interface Dialect {
  /** The events table, qualified and quoted as needed. */
  events: string;
  /** Adds a parameter and returns its placeholder. */
  param(params: unknown[], value: unknown): string;
  /** The text of one dimension, NULL when the event lacks it. */
  dimension(key: string, params: unknown[]): string;
  /** The number under one value key, NULL when the event lacks it. */
  value(key: string, params: unknown[]): string;
  /** Every pair of `filter` is among the event's dimensions. */
  dimensionsMatch(filter: Dimensions, params: unknown[]): string;
  /** Cast of an aggregate input to a float (SUM of integers must not overflow). */
  float(expr: string): string;
  /** Joins each event to its timeseries bucket; `group` is the bucket's index from 0. */
  buckets(boundaries: number[], params: unknown[]): { from: string; group: string; where: string[] };
  /** A JSON column as JSON text or a parsed object, for reading whole events back. */
  readJson(column: string): string;
  /** Expands `event_values` into (key, value) rows, joined after the events table. */
  expandValues(): { join: string; key: string; value: string };
  /**
   * Set when the database groups faster over a subquery that has already pulled each event's
   * group and values out of its JSON (SQLite sorts rows to group them, and a narrow row sorts far
   * faster than one carrying the JSON): the clause that keeps the subquery from being merged back
   * into the grouping query, e.g. `LIMIT -1`.
   */
  groupOverExtracted?: string;
}

export interface Statement {
  text: string;
  params: unknown[];
}

/** Above this many distinct value keys, totals sum through a JSON table function instead of one column per key. */
export const MAX_VALUE_COLUMNS = 200;

function conditions(d: Dialect, q: EventQuery, params: unknown[]): string[] {
  const where: string[] = [];
  if (q.customerId !== undefined) where.push(`customer_id = ${d.param(params, q.customerId)}`);
  if (q.eventType !== undefined) where.push(`event_type = ${d.param(params, q.eventType)}`);
  if (q.startDate !== undefined) where.push(`timestamp_ms >= ${d.param(params, q.startDate)}`);
  if (q.endDate !== undefined) where.push(`timestamp_ms < ${d.param(params, q.endDate)}`);
  if (q.dimensions && Object.keys(q.dimensions).length > 0) where.push(d.dimensionsMatch(q.dimensions, params));
  return where;
}

const whereClause = (where: string[]) => (where.length ? `WHERE ${where.join(' AND ')}` : '');

export function listEventsStatement(d: Dialect, q: EventQuery, limit: number, cursor?: EventCursor): Statement {
  const params: unknown[] = [];
  const where = conditions(d, q, params);
  if (cursor) where.push(`(timestamp_ms, id) < (${d.param(params, cursor.timestamp)}, ${d.param(params, cursor.id)})`);
  return {
    text: `SELECT id, customer_id, event_type, timestamp_ms, ${d.readJson('event_values')} AS event_values, ${d.readJson('dimensions')} AS dimensions, properties, idempotency_key FROM ${d.events} ${whereClause(where)} ORDER BY timestamp_ms DESC, id DESC LIMIT ${d.param(params, limit)}`,
    params,
  };
}

export type Grouping =
  | { kind: 'none' }
  | { kind: 'field'; groupBy: string }
  /** Timeseries buckets: group `i` is [boundaries[i], boundaries[i + 1]). */
  | { kind: 'buckets'; boundaries: number[] };

interface GroupParts {
  select: string;
  from: string;
  where: string[];
  groupBy: string;
}

function groupParts(d: Dialect, grouping: Grouping, params: unknown[]): GroupParts {
  switch (grouping.kind) {
    case 'none':
      return { select: 'NULL', from: d.events, where: [], groupBy: '' };
    case 'field': {
      const g = grouping.groupBy === 'customerId' ? 'customer_id' : grouping.groupBy === 'eventType' ? 'event_type' : d.dimension(grouping.groupBy, params);
      return { select: g, from: d.events, where: [], groupBy: ' GROUP BY 1' };
    }
    case 'buckets': {
      const b = d.buckets(grouping.boundaries, params);
      return { select: b.group, from: b.from, where: b.where, groupBy: ' GROUP BY 1' };
    }
  }
}

/**
 * Event count and the sum of every value key, per group, as one statement. `valueKeys` are the
 * value keys ever recorded; each becomes one `SUM` column (NULL when no event of the group has
 * it), several times faster than expanding every event's JSON. With more keys than
 * {@link MAX_VALUE_COLUMNS}, use {@link totalsByKeyStatement}.
 */
export function totalsStatement(d: Dialect, q: EventQuery, grouping: Grouping, valueKeys: string[]): Statement {
  const params: unknown[] = [];
  const group = groupParts(d, grouping, params);
  const values = valueKeys.map((k) => d.float(d.value(k, params)));
  const where = [...group.where, ...conditions(d, q, params)];
  if (group.groupBy && d.groupOverExtracted !== undefined) {
    const inner = [`${group.select} AS g`, ...values.map((v, i) => `${v} AS v${i}`)].join(', ');
    const sums = values.map((_, i) => `SUM(v${i}) AS v${i}`);
    return {
      text: `SELECT ${['g', 'COUNT(*) AS n', ...sums].join(', ')} FROM (SELECT ${inner} FROM ${group.from} ${whereClause(where)} ${d.groupOverExtracted}) GROUP BY 1`,
      params,
    };
  }
  const sums = values.map((v, i) => `SUM(${v}) AS v${i}`);
  return {
    text: `SELECT ${[`${group.select} AS g`, 'COUNT(*) AS n', ...sums].join(', ')} FROM ${group.from} ${whereClause(where)}${group.groupBy}`,
    params,
  };
}

/** The same totals through the dialect's JSON expansion: one row per (group, value key), `k` null on the count row. */
export function totalsByKeyStatement(d: Dialect, q: EventQuery, grouping: Grouping): Statement {
  const params: unknown[] = [];
  const counts = groupParts(d, grouping, params);
  const countWhere = [...counts.where, ...conditions(d, q, params)];
  const sums = groupParts(d, grouping, params);
  const sumWhere = [...sums.where, ...conditions(d, q, params)];
  const x = d.expandValues();
  const keyGroup = sums.groupBy ? `${sums.groupBy}, 2` : ' GROUP BY 2';
  return {
    text:
      `SELECT ${counts.select} AS g, NULL AS k, COUNT(*) AS n FROM ${counts.from} ${whereClause(countWhere)}${counts.groupBy} ` +
      `UNION ALL SELECT ${sums.select} AS g, ${x.key} AS k, SUM(${d.float(x.value)}) AS n FROM ${sums.from} ${x.join} ${whereClause(sumWhere)}${keyGroup}`,
    params,
  };
}

export interface TotalsRow {
  g: string | number | null;
  n: number | string;
  [column: string]: unknown;
}

/** Folds {@link totalsStatement} rows into totals per group. */
export function totalsFromColumns(rows: TotalsRow[], valueKeys: string[]): Map<string | number | null, ValueTotals> {
  const out = new Map<string | number | null, ValueTotals>();
  for (const row of rows) {
    const values: Record<string, number> = {};
    valueKeys.forEach((k, i) => {
      const v = row[`v${i}`];
      if (v !== null && v !== undefined) setValue(values, k, Number(v));
    });
    out.set(row.g, { totalEvents: Number(row.n), values });
  }
  return out;
}

/** Folds {@link totalsByKeyStatement} rows into totals per group. */
export function totalsFromKeyRows(rows: Array<{ g: string | number | null; k: string | null; n: number | string | null }>): Map<string | number | null, ValueTotals> {
  const out = new Map<string | number | null, ValueTotals>();
  const totals = (g: string | number | null) => {
    let t = out.get(g);
    if (!t) out.set(g, (t = { totalEvents: 0, values: {} }));
    return t;
  };
  for (const row of rows) {
    const t = totals(row.g);
    if (row.k === null) t.totalEvents = Number(row.n);
    else if (row.n !== null) setValue(t.values, row.k, Number(row.n));
  }
  return out;
}

// ── meter sources ────────────────────────────────────────────────────────────

type FieldKind = 'one' | 'number' | 'text' | 'none';

function fieldOfSource(d: Dialect, field: string, params: unknown[]): { kind: FieldKind; expr: string } {
  if (field === '*') return { kind: 'one', expr: '1' };
  if (field.startsWith('values.')) return { kind: 'number', expr: d.value(field.slice(7), params) };
  if (field.startsWith('dimensions.')) return { kind: 'text', expr: d.dimension(field.slice(11), params) };
  return { kind: 'none', expr: 'NULL' };
}

function sourceConditions(d: Dialect, s: MeterSource, params: unknown[]): string[] {
  const where: string[] = [];
  if (s.customerId !== undefined) where.push(`customer_id = ${d.param(params, s.customerId)}`);
  if (s.startDate !== undefined) where.push(`timestamp_ms >= ${d.param(params, s.startDate)}`);
  if (s.endDate !== undefined && s.endDate !== null) where.push(`timestamp_ms < ${d.param(params, s.endDate)}`);
  if (s.eventFilter?.eventType !== undefined) where.push(`event_type = ${d.param(params, s.eventFilter.eventType)}`);
  // Both filters must hold on their own: merged, a key they disagree on would match one of them.
  for (const filter of [s.eventFilter?.dimensions, s.dimensionFilters]) {
    if (filter && Object.keys(filter).length > 0) where.push(d.dimensionsMatch(filter, params));
  }
  return where;
}

/**
 * The running aggregate of the events a meter source selects, as the memory store builds it
 * (`addToState` over events in (timestamp, id) order): numbers feed count, sum, min, max and
 * latest; a dimension feeds the count and, for `unique`, the distinct count.
 */
export function meterStateStatement(d: Dialect, s: MeterSource): Statement {
  const params: unknown[] = [];
  const field = fieldOfSource(d, s.field, params);
  const where = [...sourceConditions(d, s, params), `${field.expr} IS NOT NULL`];
  const from = `FROM ${d.events} ${whereClause(where)}`;
  let text: string;
  if (s.aggregation === 'unique' || field.kind === 'text' || field.kind === 'none') {
    const distinct = s.aggregation === 'unique' ? `COUNT(DISTINCT ${field.expr})` : '0';
    text = `SELECT COUNT(*) AS n, ${distinct} AS distinct_count ${from}`;
  } else if (field.kind === 'one') {
    text = `SELECT COUNT(*) AS n, MAX(timestamp_ms) AS latest_at, 0 AS distinct_count ${from}`;
  } else {
    // The latest value is the one of the greatest (timestamp, id); the subquery walks an index backwards.
    const latestField = fieldOfSource(d, s.field, params);
    const latestWhere = [...sourceConditions(d, s, params), `${latestField.expr} IS NOT NULL`];
    const latest = `(SELECT ${d.float(latestField.expr)} FROM ${d.events} ${whereClause(latestWhere)} ORDER BY timestamp_ms DESC, id DESC LIMIT 1)`;
    const v = d.float(field.expr);
    text = `SELECT COUNT(*) AS n, SUM(${v}) AS s, MIN(${v}) AS mn, MAX(${v}) AS mx, MAX(timestamp_ms) AS latest_at, ${latest} AS latest, 0 AS distinct_count ${from}`;
  }
  return { text, params };
}

/**
 * Ids of the events a source selects from `since` on (whatever fields they carry): the events
 * whose counter updates may still be in flight while a counters-only store is seeded.
 */
export function recentEventIdsStatement(d: Dialect, s: MeterSource, since: number): Statement {
  const params: unknown[] = [];
  const where = sourceConditions(d, { ...s, startDate: Math.max(s.startDate ?? since, since) }, params);
  return { text: `SELECT id FROM ${d.events} ${whereClause(where)}`, params };
}

/** The distinct values a `unique` source has seen, as a SELECT to insert from. */
export function distinctValuesStatement(d: Dialect, s: MeterSource): Statement | null {
  const params: unknown[] = [];
  const field = fieldOfSource(d, s.field, params);
  if (s.aggregation !== 'unique' || field.kind === 'none') return null;
  const where = [...sourceConditions(d, s, params), `${field.expr} IS NOT NULL`];
  return { text: `SELECT DISTINCT ${field.expr} AS value FROM ${d.events} ${whereClause(where)}`, params };
}

export interface MeterStateRow {
  n: number | string;
  s?: number | string | null;
  mn?: number | string | null;
  mx?: number | string | null;
  latest?: number | string | null;
  latest_at?: number | string | null;
  distinct_count: number | string;
}

const num = (v: number | string | null | undefined): number | null => (v === null || v === undefined ? null : Number(v));

export function stateFromRow(field: string, aggregation: MeterSource['aggregation'], row: MeterStateRow): SlotState {
  const state = emptyState();
  const n = Number(row.n);
  state.count = n;
  if (n === 0) return state;
  if (aggregation === 'unique') {
    state.distinct = Number(row.distinct_count);
  } else if (field === '*') {
    // Every event contributes the number 1.
    state.sum = n;
    state.min = 1;
    state.max = 1;
    state.latest = 1;
    state.latestAt = num(row.latest_at);
  } else if (field.startsWith('values.')) {
    state.sum = num(row.s) ?? 0;
    state.min = num(row.mn);
    state.max = num(row.mx);
    state.latest = num(row.latest);
    state.latestAt = num(row.latest_at);
  }
  return state;
}
