import { TollgateError } from './errors.js';

interface Pending {
  at: number;
  reject: (error: TollgateError) => void;
  done: boolean;
}

/**
 * Fails store calls that take longer than `ms` with `store_timeout`, using one timer for all of
 * them instead of a timer, a race and a cleanup per call. Every call gets the same timeout, so
 * calls expire in the order they started: the queue is in deadline order and the timer only ever
 * waits for its head. Settled calls leave the queue when the timer next fires, or all at once
 * when the last open call settles, which also stops the timer: it never keeps the process alive
 * once nothing is waiting.
 */
export class Deadlines {
  private readonly queue: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Calls not settled yet. */
  private open = 0;

  constructor(private readonly ms: number) {}

  run<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { at: performance.now() + this.ms, reject, done: false };
      this.queue.push(pending);
      this.open++;
      if (this.timer === null) this.arm(this.ms);
      promise.then(
        (value) => {
          this.settle(pending);
          resolve(value);
        },
        (error: unknown) => {
          this.settle(pending);
          reject(error);
        },
      );
    });
  }

  private settle(pending: Pending): void {
    if (pending.done) return;
    pending.done = true;
    if (--this.open > 0) {
      // Calls mostly settle in the order they started: drop settled ones from the front as they go,
      // so a long timeout under steady load keeps only the calls still open.
      const q = this.queue;
      while (this.head < q.length && q[this.head].done) this.head++;
      if (this.head > 1024 && this.head * 2 > q.length) {
        q.splice(0, this.head);
        this.head = 0;
      }
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.head = 0;
  }

  private arm(delay: number): void {
    this.timer = setTimeout(() => this.expire(), Math.max(0, Math.ceil(delay)));
  }

  private expire(): void {
    this.timer = null;
    const now = performance.now();
    const q = this.queue;
    while (this.head < q.length) {
      const p = q[this.head];
      if (!p.done) {
        if (p.at > now) break;
        p.done = true;
        this.open--;
        p.reject(new TollgateError('store_timeout', `The store did not answer within ${this.ms} ms. Check its health or raise storeTimeoutMs.`));
      }
      this.head++;
    }
    if (this.head === q.length) {
      q.length = 0;
      this.head = 0;
      return;
    }
    this.arm(q[this.head].at - now);
  }
}
