import { TollgateError } from './errors.js';
import type { CounterOperation, CounterResult, RecordOperation, ReleaseOperation } from './store.js';

/** How long a failed counter update is retried: well inside the 15 minutes a counters store remembers event ids. */
export const CATCH_UP_MAX_AGE_MS = 10 * 60_000;
/** At most this many events (and releases) wait; past it the oldest updates are given up. */
export const CATCH_UP_MAX_QUEUED = 10_000;
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;
/** Given-up updates are reported in one process warning per reason per minute at most. */
const WARN_EVERY_MS = 60_000;

/**
 * Redis error replies that clear on their own: out of memory, busy with a script, loading its
 * data, a cluster or a replica failing over, a failed disk save.
 */
const PASSING_REPLIES = new Set(['OOM', 'BUSY', 'LOADING', 'TRYAGAIN', 'CLUSTERDOWN', 'MASTERDOWN', 'READONLY', 'NOREPLICAS', 'MISCONF']);

/**
 * Whether applying a failed update again can make it land. It can when the store was out of
 * reach, too slow, or refusing writes for a while. It cannot when the store answered the update
 * itself with an error it will give every time: a Redis script or type error (a key of another
 * app under the same prefix), a closed store, a ledger that cannot seed a slot.
 */
export function canClear(error: unknown): boolean {
  if (TollgateError.isInstance(error)) {
    return error.code === 'store_timeout' || (error.code === 'store_unavailable' && error.cause !== undefined && canClear(error.cause));
  }
  if ((error as Error | undefined)?.name === 'ReplyError') return PASSING_REPLIES.has(String((error as Error).message).split(' ', 1)[0]);
  return true;
}

/** Events in an update (a release counts one). */
const weightOf = (op: Update): number => (op.type === 'record' ? op.items.length : 1);

type GiveUpReason = 'refused' | 'overflow' | 'too_old' | 'closed';

type Update = RecordOperation | ReleaseOperation;

interface Queued {
  op: Update;
  /** {@link weightOf} the update. */
  weight: number;
  /** When the update first failed (the engine's clock). */
  since: number;
}

/**
 * Counter updates that failed after their events reached the ledger (counters apart from the
 * ledger, such as Redis beside Postgres, while Redis is unreachable), applied again until they
 * land. A record carries its event ids and the counters store counts an id once per slot, so an
 * update that did land before its failure was reported (a timeout) is not counted twice.
 *
 * Retries run in the order the updates failed, one at a time: on a timer that backs off from
 * 100 ms to 5 s, and at once when an update of the engine succeeds (the store is back). An
 * update that fails in a way that cannot clear ({@link canClear}) is given up at once, one
 * failing for longer than {@link CATCH_UP_MAX_AGE_MS} too, as are the oldest while more than
 * {@link CATCH_UP_MAX_QUEUED} events wait: their counters catch up when their window ends or
 * their slot is rebuilt from the ledger, and a process warning says so.
 */
export class CounterCatchUp {
  private queue: Queued[] = [];
  /** The weight of the queue. */
  private weight = 0;
  private timer: NodeJS.Timeout | null = null;
  private delay = FIRST_DELAY_MS;
  private running: Promise<void> | null = null;
  private closed = false;
  /** Given-up updates not reported yet, and when each reason was last reported. */
  private readonly unreported = new Map<GiveUpReason, { updates: number; events: number; detail: string; warnedAt: number }>();

  constructor(
    /** Applies an operation, timed out and seeded as the engine's own updates are. */
    private readonly apply: (op: CounterOperation) => Promise<CounterResult>,
    /** Told of each record that landed, for its alerts. */
    private readonly landed: (op: RecordOperation, result: CounterResult) => void,
    private readonly clock: () => number,
  ) {}

  /**
   * Ids of waiting events counted in slot `key`: a slot rebuilt from the ledger already has them,
   * so the rebuild must mark them counted, or their retry would count them again.
   */
  eventIdsIn(key: string): string[] {
    const ids: string[] = [];
    for (const { op } of this.queue) {
      if (op.type !== 'record') continue;
      for (const item of op.items) if (item.slots.some((slot) => slot.key === key)) ids.push(item.event.id);
    }
    return ids;
  }

  /**
   * Queues updates that failed with `error`, in order; an error that cannot clear gives the
   * first of them up at once (it failed for itself) and queues the rest.
   */
  add(ops: Update[], error: unknown): void {
    if (this.closed) return;
    if (!canClear(error)) {
      this.giveUp('refused', weightOf(ops[0]), error);
      ops = ops.slice(1);
      if (ops.length === 0) return;
    }
    const since = this.clock();
    for (const op of ops) {
      const weight = weightOf(op);
      this.queue.push({ op, since, weight });
      this.weight += weight;
    }
    while (this.weight > CATCH_UP_MAX_QUEUED) this.giveUp('overflow', this.drop());
    this.schedule();
  }

  /** The store answered an update: retry now rather than at the next tick of the backoff. */
  storeAnswered(): void {
    if (this.queue.length === 0 || this.running !== null || this.closed) return;
    this.delay = FIRST_DELAY_MS;
    void this.flush();
  }

  /** Applies the queued updates in order; stops at the first that fails and waits for the timer. */
  flush(): Promise<void> {
    return (this.running ??= this.drain().finally(() => {
      this.running = null;
      this.schedule();
    }));
  }

  /** Stops the timer after one last attempt to apply what waits. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.queue.length > 0) await this.flush();
    if (this.queue.length > 0) this.giveUp('closed', this.weight, undefined, this.queue.length);
    this.queue = [];
    this.weight = 0;
    for (const reason of this.unreported.keys()) this.warn(reason);
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0];
      const { op, since } = head;
      const now = this.clock();
      if (now - since > CATCH_UP_MAX_AGE_MS) {
        this.giveUp('too_old', this.drop());
        continue;
      }
      let result: CounterResult;
      try {
        result = await this.apply({ ...op, now });
      } catch (error) {
        if (!canClear(error)) {
          if (this.queue[0] === head) this.giveUp('refused', this.drop(), error);
          continue;
        }
        this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
        return;
      }
      // add() may have given up the head while it was in flight: then it is gone already.
      if (this.queue[0] === head) this.drop();
      this.delay = FIRST_DELAY_MS;
      if (op.type === 'record') this.landed(op, result);
    }
  }

  /** Takes the oldest update off the queue; returns its weight. */
  private drop(): number {
    const { weight } = this.queue.shift()!;
    this.weight -= weight;
    return weight;
  }

  /**
   * Counts updates given up (their counters stay short of the ledger until their windows end or
   * their slots are rebuilt) and reports them in a process warning, at most once a minute per reason.
   */
  private giveUp(reason: GiveUpReason, events: number, error?: unknown, updates = 1): void {
    const entry = this.unreported.get(reason) ?? { updates: 0, events: 0, detail: '', warnedAt: -Infinity };
    entry.updates += updates;
    entry.events += events;
    if (error !== undefined) entry.detail = String((error as Error)?.message ?? error);
    this.unreported.set(reason, entry);
    if (performance.now() - entry.warnedAt >= WARN_EVERY_MS) this.warn(reason);
  }

  private warn(reason: GiveUpReason): void {
    const entry = this.unreported.get(reason);
    if (entry === undefined || entry.updates === 0) return;
    const why = {
      refused: `the counters store refused them in a way retrying cannot mend (${entry.detail})`,
      overflow: `more than ${CATCH_UP_MAX_QUEUED} events were waiting for the counters store`,
      too_old: `the counters store refused them for over ${CATCH_UP_MAX_AGE_MS / 60_000} minutes`,
      closed: 'the counters store still refused them when Tollgate closed',
    }[reason];
    process.emitWarning(`Tollgate gave up ${entry.updates} counter update(s) of ${entry.events} event(s): ${why}.`, {
      code: 'TOLLGATE_COUNTERS_BEHIND',
      detail: 'The events are in the ledger; the limits they count toward undercount them until their windows end or their counters are rebuilt from the ledger.',
    });
    entry.updates = 0;
    entry.events = 0;
    entry.warnedAt = performance.now();
  }

  private schedule(): void {
    if (this.queue.length === 0 || this.timer !== null || this.running !== null || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.delay);
    this.timer.unref?.();
  }
}
