export { createTollgate } from './tollgate.js';
export type { Tollgate, TollgateOptions, Reservation } from './tollgate.js';
export { memoryStore } from './memory-store.js';
export { TollgateError } from './errors.js';
export type { TollgateErrorCode, FieldIssue } from './errors.js';
export * from './schemas.js';
export type * from './types.js';
export { STORE_CONTRACT_VERSION } from './store.js';
export type {
  CheckOperation,
  CounterOperation,
  CounterResult,
  CounterSlot,
  CounterStore,
  EventCursor,
  EventQuery,
  LedgerStore,
  MeterSource,
  RecordItem,
  RecordOperation,
  ReleaseOperation,
  ReserveOperation,
  SeedOperation,
  SeedState,
  SlotResult,
  SlotState,
  Store,
  StoreCapabilities,
  StoredEvent,
  ValueTotals,
} from './store.js';
export { windowFor, durationMs, offsetAt, localDate, startOfLocalDay } from './windows.js';
export type { Window, WindowContext } from './windows.js';
export { applicableLimits, eventMatchesQuery, eventMatchesSource, fieldOf, dimensionsMatch, dimensionsNotContradicted } from './matching.js';
export { emptyState, valueOf, usedWith, holdAmount, projected, slotAllows, addToState, reachedThresholds, rebuiltFired } from './slots.js';
export { newId } from './ids.js';
export * from './http.js';
