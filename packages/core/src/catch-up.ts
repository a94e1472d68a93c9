import type { CounterOperation, CounterResult, RecordOperation, ReleaseOperation } from './store.js';

/** How long a failed counter update is retried: well inside the 15 minutes a counters store remembers event ids. */
export const CATCH_UP_MAX_AGE_MS = 10 * 60_000;
/** At most this many events (and releases) wait; past it the oldest updates are given up. */
export const CATCH_UP_MAX_QUEUED = 10_000;
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;

type Update = RecordOperation | ReleaseOperation;

interface Queued {
  op: Update;
  /** Events in the update (a release counts one). */
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
 * update failing for longer than {@link CATCH_UP_MAX_AGE_MS} is given up, as are the oldest
 * while more than {@link CATCH_UP_MAX_QUEUED} events wait: their counters catch up when their
 * window ends or their slot is rebuilt from the ledger.
 */
export class CounterCatchUp {
  private queue: Queued[] = [];
  /** The weight of the queue. */
  private weight = 0;
  private timer: NodeJS.Timeout | null = null;
  private delay = FIRST_DELAY_MS;
  private running: Promise<void> | null = null;
  private closed = false;

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

  /** Queues updates that failed, in order. */
  add(ops: Update[]): void {
    if (this.closed) return;
    const since = this.clock();
    for (const op of ops) {
      const weight = op.type === 'record' ? op.items.length : 1;
      this.queue.push({ op, since, weight });
      this.weight += weight;
    }
    while (this.weight > CATCH_UP_MAX_QUEUED) this.drop();
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
    this.queue = [];
    this.weight = 0;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0];
      const { op, since } = head;
      const now = this.clock();
      if (now - since > CATCH_UP_MAX_AGE_MS) {
        this.drop();
        continue;
      }
      let result: CounterResult;
      try {
        result = await this.apply({ ...op, now });
      } catch {
        this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
        return;
      }
      // add() may have given up the head while it was in flight: then it is gone already.
      if (this.queue[0] === head) this.drop();
      this.delay = FIRST_DELAY_MS;
      if (op.type === 'record') this.landed(op, result);
    }
  }

  /** Takes the oldest update off the queue. */
  private drop(): void {
    this.weight -= this.queue.shift()!.weight;
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
